//! Query Service REST rules (spec §11.4): the query and query-template documents, a query's
//! states, the request bodies and the list parameters of `/data/foundation/query`.
//!
//! Pure: the API parses with these, the metastore stores and filters what they produce.

use serde_json::{Map, Value, json};

use crate::Doc;
use crate::xdm::validate::parse_date_time;

#[cfg(test)]
mod tests;

/// Longest SQL text a query or template may hold, after `$parameter` substitution.
pub const MAX_SQL_BYTES: usize = 256 * 1024;
/// Longest `name` or `description`.
pub const MAX_TEXT_CHARS: usize = 1024;
/// At most this many `queryParameters`.
pub const MAX_PARAMETERS: usize = 100;
/// Default and largest page of a listing (1000 is ours; Adobe does not publish one).
pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 1000;
/// At most this many `property` conditions in one listing.
pub const MAX_FILTERS: usize = 20;
/// Templates one sandbox may hold.
pub const MAX_TEMPLATES: u64 = 10_000;

/// What a stored Query Service object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QsKind {
    Query,
    Template,
}

impl QsKind {
    /// Returns the stored kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Template => "template",
        }
    }

    /// Returns the noun used in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Template => "query template",
        }
    }
}

/// A query's state (spec §11.4): SUBMITTED → IN_PROGRESS → SUCCESS | FAILED | KILLED | TIMEOUT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryState {
    Submitted,
    InProgress,
    Success,
    Failed,
    Killed,
    Timeout,
}

impl QueryState {
    pub const ALL: [Self; 6] = [
        Self::Submitted,
        Self::InProgress,
        Self::Success,
        Self::Failed,
        Self::Killed,
        Self::Timeout,
    ];

    /// Returns the state as Adobe spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "SUBMITTED",
            Self::InProgress => "IN_PROGRESS",
            Self::Success => "SUCCESS",
            Self::Failed => "FAILED",
            Self::Killed => "KILLED",
            Self::Timeout => "TIMEOUT",
        }
    }

    /// Parses Adobe's spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == text)
    }

    /// Returns true once the query can no longer change.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Submitted | Self::InProgress)
    }

    /// Returns the state of a stored query document.
    pub fn of(doc: &Doc) -> Option<Self> {
        doc.get("state")
            .and_then(Value::as_str)
            .and_then(Self::parse)
    }
}

/// Why a request body or list parameter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QsRequestError {
    /// The body is not what the call takes.
    #[error("{0}")]
    InvalidBody(String),
    /// A query parameter is not valid.
    #[error("{0}")]
    InvalidParameter(String),
}

fn body_error(message: impl Into<String>) -> QsRequestError {
    QsRequestError::InvalidBody(message.into())
}

fn parameter_error(message: impl Into<String>) -> QsRequestError {
    QsRequestError::InvalidParameter(message.into())
}

/// `ctasParameters` of a query: the SELECT becomes a CREATE TABLE AS SELECT into a new
/// dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtasParameters {
    pub dataset_name: String,
    pub description: Option<String>,
    pub target_schema_title: Option<String>,
}

/// A `POST /queries` body, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NewQuery {
    pub name: Option<String>,
    pub description: Option<String>,
    pub db_name: String,
    pub sql: Option<String>,
    pub template_id: Option<String>,
    pub query_parameters: Map<String, Value>,
    pub ctas: Option<CtasParameters>,
    /// `insertIntoParameters.datasetName`: the SELECT appends to this dataset.
    pub insert_into: Option<String>,
    /// The body as sent, echoed as the query's `request`.
    pub request: Doc,
}

fn optional_text(body: &Doc, field: &str) -> Result<Option<String>, QsRequestError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.chars().count() > MAX_TEXT_CHARS => Err(body_error(
            format!("{field} is longer than {MAX_TEXT_CHARS} characters"),
        )),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(body_error(format!("{field} must be a string"))),
    }
}

fn required_text(body: &Doc, field: &str, context: &str) -> Result<String, QsRequestError> {
    match optional_text(body, field)? {
        Some(text) if !text.trim().is_empty() => Ok(text),
        _ => Err(body_error(format!("{context}{field} is required"))),
    }
}

fn check_sql(sql: &str, field: &str) -> Result<(), QsRequestError> {
    if sql.trim().is_empty() {
        return Err(body_error(format!("{field} must not be empty")));
    }
    if sql.len() > MAX_SQL_BYTES {
        return Err(body_error(format!(
            "{field} is {} bytes; at most {MAX_SQL_BYTES} are accepted",
            sql.len()
        )));
    }
    if sql.contains('\0') {
        return Err(body_error(format!("{field} contains a NUL character")));
    }
    Ok(())
}

fn parameters(body: &Doc) -> Result<Map<String, Value>, QsRequestError> {
    match body.get("queryParameters") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => {
            if map.len() > MAX_PARAMETERS {
                return Err(body_error(format!(
                    "queryParameters holds {} entries; at most {MAX_PARAMETERS} are accepted",
                    map.len()
                )));
            }
            for (key, value) in map {
                let valid_key =
                    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid_key {
                    return Err(body_error(format!(
                        "queryParameters: {key:?} is not a parameter name (letters, digits and _)"
                    )));
                }
                if !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                    return Err(body_error(format!(
                        "queryParameters.{key} must be a string, number or boolean"
                    )));
                }
            }
            Ok(map.clone())
        }
        Some(_) => Err(body_error("queryParameters must be an object")),
    }
}

impl NewQuery {
    /// Parses a `POST /queries` body for a request in `sandbox`.
    ///
    /// # Errors
    /// A field of the wrong type, neither `sql` nor `templateId`, a `dbName` of another
    /// sandbox, SQL over [`MAX_SQL_BYTES`], or both `ctasParameters` and
    /// `insertIntoParameters`.
    pub fn parse(body: Value, sandbox: &str) -> Result<Self, QsRequestError> {
        let Value::Object(body) = body else {
            return Err(body_error("the body must be a JSON object"));
        };
        let name = optional_text(&body, "name")?;
        let description = optional_text(&body, "description")?;
        let expected = format!("{sandbox}:all");
        let db_name = match optional_text(&body, "dbName")? {
            None => expected,
            Some(db) if db == expected || db == sandbox => expected,
            Some(db) => {
                return Err(body_error(format!(
                    "dbName {db:?} is not this sandbox's database; use {expected:?} (the x-sandbox-name header's sandbox)"
                )));
            }
        };
        let sql = match body.get("sql") {
            None | Some(Value::Null) => None,
            Some(Value::String(sql)) => {
                check_sql(sql, "sql")?;
                Some(sql.clone())
            }
            Some(_) => return Err(body_error("sql must be a string")),
        };
        let template_id = optional_text(&body, "templateId")?;
        if sql.is_none() && template_id.is_none() {
            return Err(body_error(
                "either sql or templateId is required: the statement to run",
            ));
        }
        let query_parameters = parameters(&body)?;
        let ctas = match body.get("ctasParameters") {
            None | Some(Value::Null) => None,
            Some(Value::Object(params)) => Some(CtasParameters {
                dataset_name: required_text(params, "datasetName", "ctasParameters.")?,
                description: optional_text(params, "description")?,
                target_schema_title: optional_text(params, "targetSchemaTitle")?,
            }),
            Some(_) => return Err(body_error("ctasParameters must be an object")),
        };
        let insert_into = match body.get("insertIntoParameters") {
            None | Some(Value::Null) => None,
            Some(Value::Object(params)) => Some(required_text(
                params,
                "datasetName",
                "insertIntoParameters.",
            )?),
            Some(_) => return Err(body_error("insertIntoParameters must be an object")),
        };
        if ctas.is_some() && insert_into.is_some() {
            return Err(body_error(
                "ctasParameters and insertIntoParameters exclude each other",
            ));
        }
        Ok(Self {
            name,
            description,
            db_name,
            sql,
            template_id,
            query_parameters,
            ctas,
            insert_into,
            request: body,
        })
    }
}

/// Replaces each `$key` of `sql` with its parameter's value, longest key first so that
/// `$ab` is not read as `$a` followed by `b`. String values go in as written (Adobe's
/// templates quote them: `WHERE name = '$name'`).
///
/// # Errors
/// The result is over [`MAX_SQL_BYTES`].
pub fn substitute(sql: &str, parameters: &Map<String, Value>) -> Result<String, QsRequestError> {
    let mut keys: Vec<(&String, &Value)> = parameters.iter().collect();
    keys.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(b.0)));
    let mut result = sql.to_owned();
    for (key, value) in keys {
        let text = match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        result = result.replace(&format!("${key}"), &text);
        if result.len() > MAX_SQL_BYTES {
            return Err(body_error(format!(
                "the SQL after substituting queryParameters is over {MAX_SQL_BYTES} bytes"
            )));
        }
    }
    Ok(result)
}

/// A `POST /query-templates` or `PUT /query-templates/{id}` body, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTemplate {
    pub name: String,
    pub sql: String,
    pub query_parameters: Map<String, Value>,
}

impl NewTemplate {
    /// Parses a template body.
    ///
    /// # Errors
    /// A missing `name` or `sql`, or a field of the wrong type or size.
    pub fn parse(body: Value) -> Result<Self, QsRequestError> {
        let Value::Object(body) = body else {
            return Err(body_error("the body must be a JSON object"));
        };
        let name = required_text(&body, "name", "")?;
        let sql = match body.get("sql") {
            Some(Value::String(sql)) => {
                check_sql(sql, "sql")?;
                sql.clone()
            }
            None | Some(Value::Null) => return Err(body_error("sql is required")),
            Some(_) => return Err(body_error("sql must be a string")),
        };
        Ok(Self {
            name,
            sql,
            query_parameters: parameters(&body)?,
        })
    }

    /// Returns the stored template (links are added when it is served).
    pub fn to_doc(&self, id: &str, user: &str, created: &str, updated: &str) -> Doc {
        let value = json!({
            "id": id,
            "name": self.name,
            "sql": self.sql,
            "queryParameters": self.query_parameters,
            "userId": user,
            "lastUpdatedBy": user,
            "created": created,
            "updated": updated,
        });
        match value {
            Value::Object(doc) => doc,
            _ => unreachable!("json! of an object"),
        }
    }
}

/// Which field a listing is ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QsOrderField {
    Created,
    Updated,
}

impl QsOrderField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
        }
    }
}

/// A filterable field of `property=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QsField {
    Created,
    Updated,
    State,
    Id,
    /// Templates: `name~text`.
    Name,
}

/// A comparison of `property=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QsOp {
    Gt,
    Lt,
    Ge,
    Le,
    Eq,
    Ne,
    /// `~`: contains.
    Contains,
}

impl QsOp {
    /// Returns the SQL comparison (not for [`QsOp::Contains`]).
    pub fn sql(self) -> &'static str {
        match self {
            Self::Gt => ">",
            Self::Lt => "<",
            Self::Ge => ">=",
            Self::Le => "<=",
            Self::Eq => "=",
            Self::Ne => "<>",
            Self::Contains => "~",
        }
    }
}

/// A value a condition compares with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QsValue {
    Millis(i64),
    Text(String),
}

/// One `property` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QsFilter {
    pub field: QsField,
    pub op: QsOp,
    pub value: QsValue,
}

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QsStart {
    Beginning,
    /// A plain integer `start`: skip this many.
    Offset(u64),
    /// After the object whose `orderby` value is this (and, on a tie, whose id is past
    /// `id`, when the link carries one).
    After {
        millis: i64,
        id: Option<String>,
    },
}

/// A parsed `GET /queries` or `GET /query-templates` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QsListing {
    pub order: QsOrderField,
    pub descending: bool,
    pub limit: u32,
    pub start: QsStart,
    pub filters: Vec<QsFilter>,
    pub exclude_soft_deleted: bool,
    pub exclude_hidden: bool,
}

fn parse_bool(name: &str, value: &str) -> Result<bool, QsRequestError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(parameter_error(format!(
            "query parameter {name:?}: {value:?} is not true or false"
        ))),
    }
}

/// Parses a timestamp given as RFC 3339 or epoch milliseconds.
fn parse_instant(text: &str) -> Option<i64> {
    if let Ok(millis) = text.parse::<i64>() {
        return Some(millis);
    }
    parse_date_time(text).map(|micros| micros.div_euclid(1000))
}

const OPERATORS: [(&str, QsOp); 7] = [
    (">=", QsOp::Ge),
    ("<=", QsOp::Le),
    ("==", QsOp::Eq),
    ("!=", QsOp::Ne),
    (">", QsOp::Gt),
    ("<", QsOp::Lt),
    ("~", QsOp::Contains),
];

fn parse_condition(kind: QsKind, condition: &str) -> Result<QsFilter, QsRequestError> {
    let (at, text, op) = OPERATORS
        .iter()
        .filter_map(|(text, op)| condition.find(text).map(|at| (at, *text, *op)))
        // The leftmost operator; on a tie the longer one (>= before >).
        .min_by_key(|(at, text, _)| (*at, std::cmp::Reverse(text.len())))
        .ok_or_else(|| {
            parameter_error(format!(
                "property: {condition:?} has no operator; use one of > < >= <= == != ~"
            ))
        })?;
    let name = condition[..at].trim();
    let value = condition[at + text.len()..].trim();
    let field = match (kind, name) {
        (QsKind::Query, "created") | (QsKind::Template, "created") => QsField::Created,
        (QsKind::Query, "updated") | (QsKind::Template, "updated") => QsField::Updated,
        (QsKind::Query, "state") => QsField::State,
        (_, "id") => QsField::Id,
        (QsKind::Template, "name") => QsField::Name,
        _ => {
            let fields = match kind {
                QsKind::Query => "created, updated, state and id",
                QsKind::Template => "created, updated, id and name",
            };
            return Err(parameter_error(format!(
                "property: cannot filter on {name:?}; {} listings filter on {fields}",
                kind.noun()
            )));
        }
    };
    let value = match field {
        QsField::Created | QsField::Updated => {
            if op == QsOp::Contains {
                return Err(parameter_error(format!(
                    "property: {name} takes > < >= <= == !=, not ~"
                )));
            }
            QsValue::Millis(parse_instant(value).ok_or_else(|| {
                parameter_error(format!(
                    "property: {value:?} is not an RFC 3339 timestamp (2024-01-31T12:00:00Z) or epoch milliseconds"
                ))
            })?)
        }
        QsField::State => {
            if !matches!(op, QsOp::Eq | QsOp::Ne) {
                return Err(parameter_error("property: state takes == or != only"));
            }
            let state = QueryState::parse(&value.to_ascii_uppercase()).ok_or_else(|| {
                parameter_error(format!(
                    "property: {value:?} is not a query state (SUBMITTED, IN_PROGRESS, SUCCESS, FAILED, KILLED, TIMEOUT)"
                ))
            })?;
            QsValue::Text(state.as_str().to_owned())
        }
        QsField::Id => {
            if !matches!(op, QsOp::Eq | QsOp::Ne | QsOp::Contains) {
                return Err(parameter_error("property: id takes ==, != or ~"));
            }
            QsValue::Text(value.to_owned())
        }
        QsField::Name => {
            if op != QsOp::Contains {
                return Err(parameter_error("property: name takes ~ only"));
            }
            QsValue::Text(value.to_owned())
        }
    };
    if let QsValue::Text(text) = &value
        && (text.is_empty() || text.contains('\0'))
    {
        return Err(parameter_error(format!(
            "property: {condition:?} compares with an empty or invalid value"
        )));
    }
    Ok(QsFilter { field, op, value })
}

impl QsListing {
    /// Parses the list parameters: `orderby`, `limit`, `start` (with our `startId`),
    /// `property`, `excludeSoftDeleted`, `excludeHidden`; others (aepp's `isPrevLink`) are
    /// ignored.
    ///
    /// # Errors
    /// A parameter whose value is not valid, or more than [`MAX_FILTERS`] conditions.
    pub fn parse(kind: QsKind, params: &[(String, String)]) -> Result<Self, QsRequestError> {
        let mut listing = Self {
            order: QsOrderField::Created,
            descending: true,
            limit: DEFAULT_LIMIT,
            start: QsStart::Beginning,
            filters: Vec::new(),
            exclude_soft_deleted: true,
            exclude_hidden: true,
        };
        let mut start_text = None;
        let mut start_id = None;
        for (name, value) in params {
            match name.as_str() {
                "orderby" | "orderBy" => {
                    let trimmed = value.trim_end();
                    // A `+` that was not percent-encoded arrives as a space: ascending.
                    let (descending, field) = match trimmed.strip_prefix('-') {
                        Some(field) => (true, field),
                        None => (
                            false,
                            trimmed
                                .trim_start()
                                .strip_prefix('+')
                                .unwrap_or(trimmed.trim_start()),
                        ),
                    };
                    listing.order = match field {
                        "created" => QsOrderField::Created,
                        "updated" => QsOrderField::Updated,
                        _ => {
                            return Err(parameter_error(format!(
                                "query parameter \"orderby\": {value:?} is not created or updated with an optional + or - prefix"
                            )));
                        }
                    };
                    listing.descending = descending;
                }
                "limit" => {
                    listing.limit = value
                        .trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|limit| (1..=MAX_LIMIT).contains(limit))
                        .ok_or_else(|| {
                            parameter_error(format!(
                                "query parameter \"limit\": {value:?} is not an integer from 1 to {MAX_LIMIT}"
                            ))
                        })?;
                }
                "start" => start_text = Some(value.trim().to_owned()),
                "startId" => start_id = Some(value.trim().to_owned()),
                "property" => {
                    for condition in value.split(',').filter(|c| !c.trim().is_empty()) {
                        listing.filters.push(parse_condition(kind, condition)?);
                        if listing.filters.len() > MAX_FILTERS {
                            return Err(parameter_error(format!(
                                "property: at most {MAX_FILTERS} conditions are accepted"
                            )));
                        }
                    }
                }
                "excludeSoftDeleted" => listing.exclude_soft_deleted = parse_bool(name, value)?,
                "excludeHidden" => listing.exclude_hidden = parse_bool(name, value)?,
                _ => {}
            }
        }
        if let Some(text) = start_text.filter(|text| !text.is_empty()) {
            listing.start = if let Ok(offset) = text.parse::<u64>() {
                QsStart::Offset(offset)
            } else {
                let millis = parse_date_time(&text)
                    .map(|micros| micros.div_euclid(1000))
                    .ok_or_else(|| {
                        parameter_error(format!(
                            "query parameter \"start\": {text:?} is neither an offset nor an RFC 3339 timestamp of the orderby field"
                        ))
                    })?;
                QsStart::After {
                    millis,
                    id: start_id.filter(|id| !id.is_empty() && !id.contains('\0')),
                }
            };
        }
        Ok(listing)
    }

    /// Returns the `orderby` value as it goes into a link.
    pub fn orderby(&self) -> String {
        format!(
            "{}{}",
            if self.descending { "-" } else { "+" },
            self.order.as_str()
        )
    }
}

/// The indexed columns of a stored object: created and updated (epoch ms), the state of a
/// query, and whether it is soft-deleted or hidden.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QsIndex {
    pub created: i64,
    pub updated: i64,
    pub state: Option<&'static str>,
    pub deleted: bool,
    pub hidden: bool,
}

/// Field of a stored query that marks it soft-deleted.
pub const SOFT_DELETED_FIELD: &str = "softDeleted";
/// Field of a stored query that marks it hidden from listings by default (wire metadata
/// statements).
pub const HIDDEN_FIELD: &str = "hidden";

/// Reads the indexed columns of a stored object; timestamps it cannot read count as 0.
pub fn index_of(doc: &Doc) -> QsIndex {
    let instant = |field: &str| {
        doc.get(field)
            .and_then(Value::as_str)
            .and_then(parse_instant)
            .unwrap_or_default()
    };
    let flag = |field: &str| doc.get(field).and_then(Value::as_bool).unwrap_or(false);
    QsIndex {
        created: instant("created"),
        updated: instant("updated"),
        state: QueryState::of(doc).map(QueryState::as_str),
        deleted: flag(SOFT_DELETED_FIELD),
        hidden: flag(HIDDEN_FIELD),
    }
}
