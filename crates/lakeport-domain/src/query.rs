//! The Catalog query language of spec §2.2: paging, sorting, projection and filters,
//! parsed from query parameters into a backend-neutral form that metastores translate to
//! SQL.

use crate::status::BatchStatus;

/// The kinds of Catalog objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    Dataset,
    Batch,
    DatasetFile,
}

impl ObjectKind {
    /// Returns the collection name used in paths and references (`@/dataSets/<id>`).
    pub fn collection(self) -> &'static str {
        match self {
            Self::Dataset => "dataSets",
            Self::Batch => "batches",
            Self::DatasetFile => "dataSetFiles",
        }
    }

    /// Returns the singular noun used in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Dataset => "dataset",
            Self::Batch => "batch",
            Self::DatasetFile => "dataset file",
        }
    }
}

/// Page-size limits, configurable per deployment (spec §1.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimits {
    pub default_limit: u32,
    pub max_limit: u32,
    /// When true, a `limit` above `max_limit` is a 400 instead of being clamped.
    pub reject_over_max: bool,
}

impl Default for PageLimits {
    fn default() -> Self {
        Self {
            default_limit: 20,
            max_limit: 100,
            reject_over_max: false,
        }
    }
}

/// A parsed list request.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub limit: u32,
    pub start: u64,
    /// Sort keys in priority order; the backend appends `created`, `id` as tie-breakers.
    pub order: Vec<SortKey>,
    /// Top-level fields to keep in each object, when `properties` was given.
    pub properties: Option<Vec<String>>,
    /// Conditions that must all hold.
    pub filters: Vec<Filter>,
}

/// One `orderBy` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub field: String,
    pub descending: bool,
}

/// A path of object keys from the document root, e.g. `["availableDates", "startDate"]`.
pub type FieldPath = Vec<String>;

/// One filter condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `field=a,b` (any of) or `field=!a,b` (none of). Values compare by JSON type: numbers
    /// numerically, booleans by value, strings exactly (or as a wildcard for `name`).
    AnyOf {
        field: FieldPath,
        values: Vec<Value>,
        negated: bool,
    },
    /// `property=f` (present) or `property=!f` (absent).
    Exists { field: FieldPath, present: bool },
    /// `property=f<op>v`, `createdAfter=…` and the other range parameters.
    Compare {
        field: FieldPath,
        op: CompareOp,
        value: Value,
    },
    /// `property=f~regex`.
    Matches { field: FieldPath, pattern: String },
    /// `tags=name:value`.
    Tag { name: String, value: TagValue },
    /// `dataSet=<id>` and the other relationship filters on batches; `batch=<id>` matches
    /// the batch's own id.
    Related {
        relation: &'static str,
        ids: Vec<String>,
        negated: bool,
    },
}

/// A literal from a query string, with the interpretations the backends need.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// The text as sent.
    pub text: String,
    /// The number, when the text parses as one.
    pub number: Option<f64>,
    /// The boolean, when the text is `true` or `false`.
    pub boolean: Option<bool>,
    /// A SQL `LIKE` pattern (escape character `\`) when the text holds a `*` wildcard.
    pub like: Option<String>,
    /// The sortable key of a semantic version (`1.0.3`), for the `version` field.
    pub version_key: Option<i64>,
}

impl Value {
    fn new(text: &str, wildcard_allowed: bool) -> Self {
        let like = if wildcard_allowed {
            wildcard_to_like(text)
        } else {
            None
        };
        // Without a wildcard, `**` still stands for a literal asterisk.
        let exact = if wildcard_allowed && like.is_none() {
            text.replace("**", "*")
        } else {
            text.to_owned()
        };
        Self {
            text: exact,
            number: text.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
            boolean: match text {
                "true" | "True" | "TRUE" => Some(true),
                "false" | "False" | "FALSE" => Some(false),
                _ => None,
            },
            like: if wildcard_allowed {
                wildcard_to_like(text)
            } else {
                None
            },
            version_key: version_key(text),
        }
    }
}

/// A comparison operator of a `property=` expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// The value part of a `tags=` filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagValue {
    /// `tags=name:*`: the tag is present with any value.
    Any,
    /// `tags=name:value`.
    Exact(String),
    /// `tags=name:val*`.
    Prefix(String),
}

/// A query parameter that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("query parameter {parameter:?}: {reason}")]
pub struct QueryError {
    pub parameter: String,
    pub reason: String,
}

fn query_error(parameter: &str, reason: impl Into<String>) -> QueryError {
    QueryError {
        parameter: parameter.to_owned(),
        reason: reason.into(),
    }
}

/// Relationship names that filter batches through `relatedObjects` (spec §2.2.3), except
/// `batch`, which matches the batch's own id.
const RELATIONS: &[&str] = &[
    "dataSet",
    "batch",
    "dataSetFile",
    "dataSetView",
    "connection",
    "connector",
    "transform",
];

impl ListQuery {
    /// Parses the query parameters of a list call on a collection of `kind`.
    ///
    /// # Errors
    /// Returns the first parameter that is malformed, with a reason that says what to fix.
    pub fn parse(
        kind: ObjectKind,
        params: &[(String, String)],
        limits: PageLimits,
    ) -> Result<Self, QueryError> {
        let mut limit_text = None;
        let mut start = 0u64;
        let mut order = Vec::new();
        let mut properties = None;
        let mut filters = Vec::new();

        for (name, value) in params {
            let name = name.as_str();
            match name {
                "limit" => limit_text = Some(value.clone()),
                "start" | "offset" => {
                    start = value.trim().parse::<u64>().map_err(|_| {
                        query_error(
                            name,
                            format!("{value:?} is not a non-negative integer offset"),
                        )
                    })?;
                }
                "orderBy" | "orderby" | "sort" => order = parse_order(name, value)?,
                "properties" => {
                    let fields: Vec<String> = value
                        .split(',')
                        .map(str::trim)
                        .filter(|f| !f.is_empty())
                        .map(str::to_owned)
                        .collect();
                    if fields.is_empty() {
                        return Err(query_error(
                            name,
                            "expected a comma-separated list of field names",
                        ));
                    }
                    properties = Some(fields);
                }
                "property" => filters.push(parse_property(value)?),
                "tags" => filters.extend(parse_tags(value)?),
                "createdAfter" | "createdBefore" | "startAfter" | "startBefore" | "endAfter"
                | "endBefore" => filters.push(parse_time_bound(kind, name, value)?),
                "aggregate" | "requestDataSource" => {
                    if !matches!(value.to_ascii_lowercase().as_str(), "true" | "false") {
                        return Err(query_error(name, format!("{value:?} is not true or false")));
                    }
                }
                "expansion" => {}
                _ if kind == ObjectKind::Batch && RELATIONS.contains(&name) => {
                    let (negated, list) = split_negation(value);
                    let ids = split_list(list);
                    if ids.is_empty() {
                        return Err(query_error(name, "expected one or more ids"));
                    }
                    filters.push(Filter::Related {
                        relation: RELATIONS
                            .iter()
                            .find(|r| **r == name)
                            .expect("checked above"),
                        ids,
                        negated,
                    });
                }
                _ => filters.push(parse_simple(kind, name, value)?),
            }
        }

        let cap = if properties
            .as_ref()
            .is_some_and(|p| p.iter().any(|f| f == "observableSchema"))
        {
            limits.max_limit.min(20)
        } else {
            limits.max_limit
        };
        let limit = match limit_text {
            None => limits.default_limit.min(cap),
            Some(text) => parse_limit(&text, cap, limits.reject_over_max)?,
        };
        Ok(Self {
            limit,
            start,
            order,
            properties,
            filters,
        })
    }
}

fn parse_limit(text: &str, cap: u32, reject_over_max: bool) -> Result<u32, QueryError> {
    let range = format!("limit must be an integer from 1 to {cap}");
    let trimmed = text.trim();
    let parsed: i64 = match trimmed.parse() {
        Ok(parsed) => parsed,
        // Integers beyond 64 bits are too large or too small, not malformed.
        Err(_) if is_integer(trimmed) => {
            if trimmed.starts_with('-') {
                i64::MIN
            } else {
                i64::MAX
            }
        }
        Err(_) => {
            return Err(query_error(
                "limit",
                format!("{text:?} is not an integer; {range}"),
            ));
        }
    };
    if parsed < 1 {
        return Err(query_error(
            "limit",
            format!("{parsed} is too small; {range}"),
        ));
    }
    if parsed > i64::from(cap) {
        if reject_over_max {
            return Err(query_error(
                "limit",
                format!("{parsed} is too large; {range}"),
            ));
        }
        return Ok(cap);
    }
    Ok(u32::try_from(parsed).expect("bounded by cap"))
}

fn is_integer(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn parse_order(parameter: &str, value: &str) -> Result<Vec<SortKey>, QueryError> {
    let mut keys = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (descending, field) = match item.split_once(':') {
            Some((dir, field)) => match dir.to_ascii_lowercase().as_str() {
                "asc" => (false, field),
                "desc" => (true, field),
                _ => {
                    return Err(query_error(
                        parameter,
                        format!("sort direction {dir:?} in {item:?} must be asc or desc"),
                    ));
                }
            },
            None => match item.strip_prefix('-') {
                Some(field) => (true, field),
                None => (false, item.strip_prefix('+').unwrap_or(item)),
            },
        };
        check_field_name(parameter, field)?;
        keys.push(SortKey {
            field: field.to_owned(),
            descending,
        });
    }
    if keys.is_empty() {
        return Err(query_error(
            parameter,
            "expected <asc|desc>:<field>[,<asc|desc>:<field>...], e.g. desc:created",
        ));
    }
    Ok(keys)
}

fn is_field_name(field: &str) -> bool {
    !field.is_empty()
        && field.len() <= MAX_FIELD_NAME_LEN
        && field
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '@' | '$'))
}

fn check_field_name(parameter: &str, field: &str) -> Result<(), QueryError> {
    if is_field_name(field) {
        Ok(())
    } else {
        Err(query_error(
            parameter,
            format!(
                "{field:?} is not a field name (letters, digits, '_', '-', ':', '@' and '$' only)"
            ),
        ))
    }
}

fn split_negation(value: &str) -> (bool, &str) {
    match value.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, value),
    }
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_simple(kind: ObjectKind, name: &str, value: &str) -> Result<Filter, QueryError> {
    if name.contains('.') && name.split('.').all(is_field_name) {
        return Err(query_error(
            name,
            format!(
                "a simple filter names a top-level field; filter a nested field with property={name}==<value>"
            ),
        ));
    }
    check_field_name(name, name)?;
    let (negated, list) = split_negation(value);
    let wildcard = name == "name";
    let mut values = Vec::new();
    for item in list.split(',') {
        if name == "status" && kind == ObjectKind::Batch {
            // Synonyms match too: `active` finds `success` batches (spec §8 item 6).
            let status: BatchStatus = item
                .parse()
                .map_err(|err: crate::status::UnknownName| query_error(name, err.to_string()))?;
            values.push(Value::new(status.as_str(), false));
        } else {
            values.push(Value::new(item, wildcard));
        }
    }
    Ok(Filter::AnyOf {
        field: vec![name.to_owned()],
        values,
        negated,
    })
}

fn parse_time_bound(kind: ObjectKind, name: &str, value: &str) -> Result<Filter, QueryError> {
    let millis: i64 = value.trim().parse().map_err(|_| {
        query_error(
            name,
            format!("{value:?} is not an integer (Unix epoch milliseconds)"),
        )
    })?;
    let (field, op) = match name {
        "createdAfter" => (vec!["created".to_owned()], CompareOp::Gt),
        "createdBefore" => (vec!["created".to_owned()], CompareOp::Lt),
        _ if kind != ObjectKind::Batch => {
            return Err(query_error(name, "this filter only applies to batches"));
        }
        "startAfter" => (availability("startDate"), CompareOp::Gt),
        "startBefore" => (availability("startDate"), CompareOp::Lt),
        "endAfter" => (availability("endDate"), CompareOp::Gt),
        _ => (availability("endDate"), CompareOp::Lt),
    };
    Ok(Filter::Compare {
        field,
        op,
        value: Value::new(&millis.to_string(), false),
    })
}

fn availability(field: &str) -> FieldPath {
    vec!["availableDates".to_owned(), field.to_owned()]
}

fn parse_tags(value: &str) -> Result<Vec<Filter>, QueryError> {
    let mut filters = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        // Tag names may themselves contain ':' (`adobe/pqs/table`, `acp:x`); the value is
        // what follows the last ':'.
        let Some((name, tag_value)) = item.rsplit_once(':') else {
            return Err(query_error(
                "tags",
                format!(
                    "{item:?} must be <tag name>:<value>, <tag name>:<prefix>* or <tag name>:*"
                ),
            ));
        };
        if name.is_empty() {
            return Err(query_error(
                "tags",
                format!("{item:?} has an empty tag name"),
            ));
        }
        let tag = if tag_value == "*" {
            TagValue::Any
        } else if let Some(prefix) = tag_value.strip_suffix('*') {
            TagValue::Prefix(prefix.to_owned())
        } else {
            TagValue::Exact(tag_value.to_owned())
        };
        filters.push(Filter::Tag {
            name: name.to_owned(),
            value: tag,
        });
    }
    if filters.is_empty() {
        return Err(query_error(
            "tags",
            "expected <tag name>:<value>[,<tag name>:<value>...]",
        ));
    }
    Ok(filters)
}

const OPERATORS: [(&str, CompareOp); 6] = [
    ("==", CompareOp::Eq),
    ("!=", CompareOp::Ne),
    ("<=", CompareOp::Le),
    (">=", CompareOp::Ge),
    ("<", CompareOp::Lt),
    (">", CompareOp::Gt),
];

fn parse_property(expression: &str) -> Result<Filter, QueryError> {
    let syntax = "expected f, !f, f==v, f!=v, f<v, f<=v, f>v, f>=v or f~regex";
    // Find the earliest operator; at equal positions the two-character form wins.
    let mut found: Option<(usize, &str, Option<CompareOp>)> = None;
    for (index, ch) in expression.char_indices() {
        if let Some((symbol, op)) = OPERATORS
            .iter()
            .find(|(symbol, _)| expression[index..].starts_with(symbol))
        {
            found = Some((index, symbol, Some(*op)));
            break;
        }
        if ch == '~' {
            found = Some((index, "~", None));
            break;
        }
        if ch == '=' {
            return Err(query_error(
                "property",
                format!("{expression:?} uses '=', write '==' to compare: {syntax}"),
            ));
        }
    }
    let Some((index, symbol, op)) = found else {
        let (negated, field) = split_negation(expression.trim());
        if field.is_empty() || field.contains(char::is_whitespace) {
            return Err(query_error("property", format!("{expression:?}: {syntax}")));
        }
        return Ok(Filter::Exists {
            field: parse_property_path(field)?,
            present: !negated,
        });
    };
    let field = expression[..index].trim();
    let value = &expression[index + symbol.len()..];
    if field.is_empty() {
        return Err(query_error(
            "property",
            format!("{expression:?} has no field name before {symbol:?}: {syntax}"),
        ));
    }
    let path = parse_property_path(field)?;
    if value.is_empty() {
        return Err(query_error(
            "property",
            format!("{expression:?} has no value after {symbol:?}: {syntax}"),
        ));
    }
    match op {
        Some(op) => Ok(Filter::Compare {
            field: path,
            op,
            value: Value::new(value, field == "name"),
        }),
        None => {
            check_filter_regex(value)?;
            Ok(Filter::Matches {
                field: path,
                pattern: value.to_owned(),
            })
        }
    }
}

/// The most positions a `property=f~regex` pattern may expand to once its counted
/// repetitions are unrolled (`a{1000}` is 1000, `(ab){10}` is 20). Matching costs about this
/// many steps per byte of every value tested, so `a{1000}a{1000}…` against long names would
/// hold a request for seconds; real filters are far below the bound.
pub const MAX_REGEX_EXPANSION: u64 = 1000;

/// Checks that a `property=` pattern is a valid regular expression whose unrolled size is
/// within [`MAX_REGEX_EXPANSION`].
fn check_filter_regex(pattern: &str) -> Result<(), QueryError> {
    let invalid = |err: &dyn std::fmt::Display| {
        query_error(
            "property",
            format!("{pattern:?} is not a valid regular expression: {err}"),
        )
    };
    let hir = regex_syntax::Parser::new()
        .parse(pattern)
        .map_err(|err| invalid(&err))?;
    let expansion = expanded_size(&hir);
    if expansion > MAX_REGEX_EXPANSION {
        return Err(query_error(
            "property",
            format!(
                "{pattern:?} expands to {expansion} positions once its repetitions are unrolled; a filter pattern may have at most {MAX_REGEX_EXPANSION}"
            ),
        ));
    }
    regex::Regex::new(pattern).map_err(|err| invalid(&err))?;
    Ok(())
}

/// The number of positions `hir` expands to with every counted repetition unrolled (an
/// unbounded one counts its minimum plus one). The parser's nesting limit bounds the recursion.
fn expanded_size(hir: &regex_syntax::hir::Hir) -> u64 {
    use regex_syntax::hir::HirKind;
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => 0,
        HirKind::Literal(literal) => literal.0.len() as u64,
        HirKind::Class(_) => 1,
        HirKind::Repetition(repetition) => {
            let times = repetition
                .max
                .unwrap_or_else(|| repetition.min.saturating_add(1))
                .max(1);
            expanded_size(&repetition.sub).saturating_mul(u64::from(times))
        }
        HirKind::Capture(capture) => expanded_size(&capture.sub),
        HirKind::Concat(parts) | HirKind::Alternation(parts) => {
            parts.iter().fold(0u64, |total, part| {
                total.saturating_add(expanded_size(part))
            })
        }
    }
}

/// The most segments a dotted `property=` path may have (`schemaRef.id` has two).
pub const MAX_PATH_SEGMENTS: usize = 8;

/// The longest field name, or segment of a dotted path, a filter may name.
const MAX_FIELD_NAME_LEN: usize = 128;

/// Splits the field of a `property=` expression into the keys of a nested path:
/// `schemaRef.id` is `["schemaRef", "id"]`.
///
/// Spec §2.2.3 names top-level fields only, but real clients (aepp's
/// `SchemaManager.getDatasets`) filter datasets by `schemaRef.id==…`, so dotted paths are
/// accepted; each segment is a field name and the depth is bounded.
fn parse_property_path(field: &str) -> Result<FieldPath, QueryError> {
    let segments: Vec<&str> = field.split('.').collect();
    if segments.len() > MAX_PATH_SEGMENTS {
        return Err(query_error(
            "property",
            format!(
                "{field:?} has {} path segments; a dotted path may have at most {MAX_PATH_SEGMENTS}",
                segments.len()
            ),
        ));
    }
    if segments.iter().any(|segment| segment.is_empty()) {
        return Err(query_error(
            "property",
            format!(
                "{field:?} has an empty path segment; write a field name or a dotted path such as schemaRef.id"
            ),
        ));
    }
    for segment in &segments {
        if !is_field_name(segment) {
            let what = if segments.len() == 1 {
                format!("{field:?} is not a field name")
            } else {
                format!("segment {segment:?} of {field:?} is not a field name")
            };
            return Err(query_error(
                "property",
                format!(
                    "{what} (at most {MAX_FIELD_NAME_LEN} letters, digits, '_', '-', ':', '@' and '$'; '.' separates nested fields)"
                ),
            ));
        }
    }
    Ok(segments.into_iter().map(str::to_owned).collect())
}

impl Filter {
    /// Evaluates the filter against a document in memory, with the same rules the SQL
    /// backends apply (used for small collections such as registry listings). An array
    /// field matches when any of its elements does.
    pub fn matches(&self, doc: &crate::Doc) -> bool {
        match self {
            Filter::AnyOf {
                field,
                values,
                negated,
            } => match lookup(doc, field) {
                None => false,
                Some(found) => values.iter().any(|value| equals(found, value)) != *negated,
            },
            Filter::Exists { field, present } => lookup(doc, field).is_some() == *present,
            Filter::Compare { field, op, value } => match (lookup(doc, field), op) {
                (None, CompareOp::Ne) => true,
                (None, _) => false,
                (Some(found), CompareOp::Eq) => equals(found, value),
                (Some(found), CompareOp::Ne) => !equals(found, value),
                (Some(found), op) => compare(found, value).is_some_and(|ordering| match op {
                    CompareOp::Lt => ordering.is_lt(),
                    CompareOp::Le => ordering.is_le(),
                    CompareOp::Gt => ordering.is_gt(),
                    CompareOp::Ge => ordering.is_ge(),
                    CompareOp::Eq | CompareOp::Ne => unreachable!("handled above"),
                }),
            },
            Filter::Matches { field, pattern } => {
                let Ok(regex) = regex::Regex::new(pattern) else {
                    return false;
                };
                lookup(doc, field).is_some_and(|found| {
                    any_element(found, &|v| {
                        v.as_str().is_some_and(|text| regex.is_match(text))
                    })
                })
            }
            Filter::Tag { name, value } => doc
                .get("tags")
                .and_then(|tags| tags.get(name))
                .and_then(serde_json::Value::as_array)
                .is_some_and(|items| {
                    items
                        .iter()
                        .filter_map(serde_json::Value::as_str)
                        .any(|item| match value {
                            TagValue::Any => true,
                            TagValue::Exact(text) => item == text,
                            TagValue::Prefix(prefix) => item.starts_with(prefix.as_str()),
                        })
                }),
            Filter::Related {
                relation,
                ids,
                negated,
            } if *relation == "batch" => {
                // `batch=` names the batch itself, not a related object (spec §2.2.3).
                let own = doc
                    .get("id")
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|id| ids.iter().any(|wanted| wanted == id));
                own != *negated
            }
            Filter::Related {
                relation,
                ids,
                negated,
            } => {
                let related = doc
                    .get("relatedObjects")
                    .and_then(serde_json::Value::as_array)
                    .is_some_and(|objects| {
                        objects.iter().any(|object| {
                            object.get("type").and_then(serde_json::Value::as_str) == Some(relation)
                                && object
                                    .get("id")
                                    .and_then(serde_json::Value::as_str)
                                    .is_some_and(|id| ids.iter().any(|wanted| wanted == id))
                        })
                    });
                related != *negated
            }
        }
    }
}

/// Returns the value at `field`, descending through objects only. A JSON `null` is a value
/// that is present, as the SQL backends see it (`property=f` finds `"f": null`).
fn lookup<'a>(doc: &'a crate::Doc, field: &[String]) -> Option<&'a serde_json::Value> {
    let (first, rest) = field.split_first()?;
    let mut current = doc.get(first)?;
    for key in rest {
        current = current.as_object()?.get(key)?;
    }
    Some(current)
}

fn any_element(found: &serde_json::Value, test: &dyn Fn(&serde_json::Value) -> bool) -> bool {
    match found {
        serde_json::Value::Array(items) => items.iter().any(test),
        other => test(other),
    }
}

fn equals(found: &serde_json::Value, value: &Value) -> bool {
    any_element(found, &|element| match element {
        serde_json::Value::String(text) => match &value.like {
            Some(_) => wildcard_matches(&value.text, text),
            None => *text == value.text,
        },
        serde_json::Value::Number(n) => value
            .number
            .is_some_and(|wanted| n.as_f64() == Some(wanted)),
        serde_json::Value::Bool(flag) => value.boolean == Some(*flag),
        _ => false,
    })
}

fn compare(found: &serde_json::Value, value: &Value) -> Option<std::cmp::Ordering> {
    match found {
        serde_json::Value::Number(n) => n.as_f64()?.partial_cmp(&value.number?),
        serde_json::Value::String(text) => match (version_key(text), value.version_key) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => Some(text.as_str().cmp(value.text.as_str())),
        },
        _ => None,
    }
}

/// Matches `*` wildcards (`**` = literal asterisk) against text, case-sensitively.
fn wildcard_matches(pattern: &str, text: &str) -> bool {
    let mut tokens: Vec<Option<char>> = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == '*' {
            if chars.peek() == Some(&'*') {
                chars.next();
                tokens.push(Some('*'));
            } else {
                tokens.push(None);
            }
        } else {
            tokens.push(Some(ch));
        }
    }
    let text: Vec<char> = text.chars().collect();
    // Classic glob matching with backtracking over the last wildcard.
    let (mut t, mut p) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while t < text.len() {
        if p < tokens.len() && tokens[p] == Some(text[t]) {
            t += 1;
            p += 1;
        } else if p < tokens.len() && tokens[p].is_none() {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    tokens[p..].iter().all(Option::is_none)
}

/// Converts a `name` filter value with `*` wildcards into a SQL `LIKE` pattern with `\` as
/// the escape character; `**` stands for a literal asterisk. Returns `None` when the value
/// holds no wildcard.
pub fn wildcard_to_like(value: &str) -> Option<String> {
    if !value.contains('*') {
        return None;
    }
    let mut pattern = String::with_capacity(value.len() + 4);
    let mut has_wildcard = false;
    let mut chars = value.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                pattern.push('*');
            }
            '*' => {
                has_wildcard = true;
                pattern.push('%');
            }
            '%' | '_' | '\\' => {
                pattern.push('\\');
                pattern.push(ch);
            }
            _ => pattern.push(ch),
        }
    }
    has_wildcard.then_some(pattern)
}

/// Returns a key that orders semantic versions (`major.minor.patch`) numerically, or
/// `None` when the text is not one.
pub fn version_key(text: &str) -> Option<i64> {
    let mut parts = text.trim().split('.');
    let mut key = 0i64;
    for _ in 0..3 {
        let part: i64 = parts.next()?.parse().ok()?;
        if !(0..1_000_000).contains(&part) {
            return None;
        }
        key = key * 1_000_000 + part;
    }
    parts.next().is_none().then_some(key)
}

#[cfg(test)]
mod tests;
