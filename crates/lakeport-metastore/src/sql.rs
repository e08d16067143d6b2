//! Translates a [`ListQuery`] into SQL over the documents and their indexed columns, once for
//! both backends. What truly differs — how a JSON value is reached and typed, regular
//! expressions, tags and related objects (`json_each` or `jsonb_*`), where `NULL` sorts — is
//! asked of the backend's [`Dialect`], so that both give the same answers: the same type
//! rules per JSON value, byte-wise text order, objects without a sort field last in both
//! directions, `NULL` columns first in ascending order. Every value is a bound `$n`
//! parameter (SQLite runs them as `?n`); field names only reach the SQL text as bound paths.

use lakeport_domain::query::{CompareOp, Filter, ListQuery, ObjectKind, TagValue, Value};

/// A value bound to a `$n` placeholder.
#[derive(Debug, Clone)]
pub enum Bind {
    Text(String),
    Int(i64),
    Real(f64),
    /// A path into the document, in the form the dialect's [`Dialect::field`] reads.
    Path(Vec<String>),
}

/// The indexed columns of one Catalog table: top-level field name → column.
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
}

pub struct Column {
    field: &'static str,
    name: &'static str,
    integer: bool,
    nullable: bool,
}

const fn column(field: &'static str, name: &'static str, integer: bool, nullable: bool) -> Column {
    Column {
        field,
        name,
        integer,
        nullable,
    }
}

const DATASETS: Table = Table {
    name: "datasets",
    columns: &[
        column("id", "id", false, false),
        column("created", "created", true, false),
        column("updated", "updated", true, false),
        column("name", "name", false, true),
    ],
};

const BATCHES: Table = Table {
    name: "batches",
    columns: &[
        column("id", "id", false, false),
        column("created", "created", true, false),
        column("updated", "updated", true, false),
        column("status", "status", false, false),
        column("externalId", "external_id", false, false),
    ],
};

const DATASET_FILES: Table = Table {
    name: "dataset_files",
    columns: &[
        column("id", "id", false, false),
        column("created", "created", true, false),
        column("updated", "updated", true, false),
        column("dataSetId", "dataset_id", false, true),
        column("batchId", "batch_id", false, true),
    ],
};

pub fn table(kind: ObjectKind) -> &'static Table {
    match kind {
        ObjectKind::Dataset => &DATASETS,
        ObjectKind::Batch => &BATCHES,
        ObjectKind::DatasetFile => &DATASET_FILES,
    }
}

/// A SQL statement under construction with its bound values.
#[derive(Debug, Clone, Default)]
pub struct Statement {
    pub sql: String,
    pub binds: Vec<Bind>,
}

impl Statement {
    /// Binds a value and returns its placeholder.
    pub fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    pub fn text(&mut self, value: &str) -> String {
        self.bind(Bind::Text(value.to_owned()))
    }

    /// Binds each value and returns the placeholders, comma-separated.
    pub fn list(&mut self, values: &[String]) -> String {
        let placeholders: Vec<String> = values.iter().map(|value| self.text(value)).collect();
        placeholders.join(", ")
    }

    pub fn push(&mut self, sql: &str) {
        self.sql.push_str(sql);
    }
}

/// What the SQL of the two backends says differently. A `field` is what [`Dialect::field`]
/// returned for a path: the other methods build their expressions from it.
pub trait Dialect {
    /// The column holding a document's text as it was written.
    const BODY: &'static str;
    /// Binds `path` and returns how the other methods name the JSON value there.
    fn field(statement: &mut Statement, path: &[String]) -> String;
    /// True when the document has a value (JSON `null` included) at the field.
    fn present(field: &str) -> String;
    fn is_string(field: &str) -> String;
    fn is_number(field: &str) -> String;
    /// True when the field holds the JSON boolean `flag`.
    fn is_boolean(field: &str, flag: bool) -> String;
    /// The text of a string field, compared byte-wise.
    fn text(field: &str) -> String;
    /// The number of a number field.
    fn number(field: &str) -> String;
    /// True when the string at the field matches a pattern in Rust `regex` syntax.
    fn matches(statement: &mut Statement, field: &str, pattern: &str) -> String;
    /// The sort keys of a field that no column holds, present values only: JSON null, then
    /// numbers and booleans (as 1/0) numerically, then text.
    fn sort_keys(field: &str) -> Vec<String>;
    /// Text compared byte-wise.
    fn bytewise(expression: &str) -> String;
    /// What makes a nullable column sort `NULL` first ascending and last descending.
    fn nulls(descending: bool) -> &'static str;
    /// True when the document's tag `name` has an item matching `value`; an object's
    /// values are its items, and a scalar tag value is a one-item list.
    fn tag(statement: &mut Statement, name: &str, value: &TagValue) -> String;
    /// True when a related object of type `relation` has one of `ids`.
    fn related(statement: &mut Statement, relation: &str, ids: &[String]) -> String;
}

/// Builds `SELECT body … ORDER BY … LIMIT … OFFSET …` for one page.
pub fn select_page<D: Dialect>(
    kind: ObjectKind,
    org: &str,
    sandbox: &str,
    query: &ListQuery,
) -> Statement {
    let table = table(kind);
    let mut statement = scan::<D>(table, D::BODY, org, sandbox, query);
    statement.push(" ORDER BY ");
    for key in &query.order {
        let direction = if key.descending { " DESC" } else { " ASC" };
        match find_column(table, &key.field) {
            Some(column) => {
                statement.push(column.name);
                statement.push(direction);
                if column.nullable {
                    statement.push(D::nulls(key.descending));
                }
            }
            None if key.field == "version" => {
                statement.push("version_key");
                statement.push(direction);
            }
            None => {
                // Objects without the field sort last in both directions (spec §2.2.2).
                let field = D::field(&mut statement, std::slice::from_ref(&key.field));
                statement.push(&format!("(NOT ({})) ASC", D::present(&field)));
                for sort_key in D::sort_keys(&field) {
                    statement.push(", ");
                    statement.push(&sort_key);
                    statement.push(direction);
                }
            }
        }
        statement.push(", ");
    }
    // The default order, and the tie-breaker that keeps offset paging stable (spec §8.17).
    let limit = statement.bind(Bind::Int(i64::from(query.limit)));
    let offset = statement.bind(Bind::Int(i64::try_from(query.start).unwrap_or(i64::MAX)));
    statement.push(&format!(
        "created ASC, id ASC LIMIT {limit} OFFSET {offset}"
    ));
    statement
}

/// Builds `SELECT COUNT(*)` over the query's filters.
pub fn select_count<D: Dialect>(
    kind: ObjectKind,
    org: &str,
    sandbox: &str,
    query: &ListQuery,
) -> Statement {
    scan::<D>(table(kind), "COUNT(*)", org, sandbox, query)
}

fn scan<D: Dialect>(
    table: &'static Table,
    what: &str,
    org: &str,
    sandbox: &str,
    query: &ListQuery,
) -> Statement {
    let mut statement = Statement {
        sql: format!(
            "SELECT {what} FROM {} WHERE org = $1 AND sandbox = $2",
            table.name
        ),
        binds: vec![Bind::Text(org.to_owned()), Bind::Text(sandbox.to_owned())],
    };
    for filter in &query.filters {
        statement.push(" AND ");
        push_filter::<D>(&mut statement, table, filter);
    }
    statement
}

fn find_column(table: &'static Table, field: &str) -> Option<&'static Column> {
    table.columns.iter().find(|column| column.field == field)
}

fn push_filter<D: Dialect>(statement: &mut Statement, table: &'static Table, filter: &Filter) {
    match filter {
        Filter::AnyOf {
            field,
            values,
            negated,
        } => {
            // Objects without the field never match a simple filter (spec §2.2.3).
            let json = D::field(statement, field);
            statement.push(&D::present(&json));
            statement.push(if *negated { " AND NOT (" } else { " AND (" });
            for (index, value) in values.iter().enumerate() {
                if index > 0 {
                    statement.push(" OR ");
                }
                push_compare::<D>(statement, table, field, CompareOp::Eq, value);
            }
            statement.push(")");
        }
        Filter::Exists { field, present } => {
            if !present {
                statement.push("NOT ");
            }
            let json = D::field(statement, field);
            statement.push(&D::present(&json));
        }
        Filter::Compare { field, op, value } => {
            if *op == CompareOp::Ne {
                // A missing field compares as NULL; `f!=v` matches objects without `f`.
                statement.push("NOT COALESCE((");
                push_compare::<D>(statement, table, field, CompareOp::Eq, value);
                statement.push("), FALSE)");
            } else {
                push_compare::<D>(statement, table, field, *op, value);
            }
        }
        Filter::Matches { field, pattern } => {
            let json = D::field(statement, field);
            let matches = D::matches(statement, &json, pattern);
            statement.push(&format!("({} AND {matches})", D::is_string(&json)));
        }
        Filter::Tag { name, value } => {
            let tag = D::tag(statement, name, value);
            statement.push(&tag);
        }
        Filter::Related {
            relation,
            ids,
            negated,
        } => {
            // A batch belongs to one dataset, kept in an indexed column; `batch=` names the
            // batch itself (spec §2.2.3).
            let column = match *relation {
                "dataSet" => Some("dataset_id"),
                "batch" => Some("id"),
                _ => None,
            };
            if let Some(column) = column {
                let list = statement.list(ids);
                let not = if *negated { " NOT" } else { "" };
                statement.push(&format!("{column}{not} IN ({list})"));
                return;
            }
            if *negated {
                statement.push("NOT ");
            }
            let related = D::related(statement, relation, ids);
            statement.push(&related);
        }
    }
}

fn operator(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq | CompareOp::Ne => "=",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
    }
}

/// Compares a field with a literal: numerically when both are numbers, by semantic version
/// for `version`, as booleans for `true`/`false`, else as text (with `LIKE` for wildcards).
fn push_compare<D: Dialect>(
    statement: &mut Statement,
    table: &'static Table,
    field: &[String],
    op: CompareOp,
    value: &Value,
) {
    let sql_op = operator(op);
    let top_level = (field.len() == 1).then(|| field[0].as_str());
    if top_level == Some("version")
        && let Some(key) = value.version_key
    {
        let key = statement.bind(Bind::Int(key));
        statement.push(&format!("version_key {sql_op} {key}"));
        return;
    }
    if let Some(column) = top_level.and_then(|f| find_column(table, f)) {
        let name = column.name;
        match (column.integer, value.number) {
            (true, Some(number)) => {
                // An integral literal binds as an integer so the column's index stays usable.
                let number = if number.fract() == 0.0 && number.abs() < 9.0e15 {
                    statement.bind(Bind::Int(number as i64))
                } else {
                    statement.bind(Bind::Real(number))
                };
                statement.push(&format!("{name} {sql_op} {number}"));
            }
            (true, None) => {
                let text = statement.text(&value.text);
                let column = D::bytewise(&format!("CAST({name} AS TEXT)"));
                statement.push(&format!("{column} {sql_op} {text}"));
            }
            (false, _) => match (&value.like, op) {
                (Some(like), CompareOp::Eq) => {
                    let like = statement.text(like);
                    statement.push(&format!("{name} LIKE {like} ESCAPE '\\'"));
                }
                _ => {
                    let text = statement.text(&value.text);
                    statement.push(&format!("{name} {sql_op} {text}"));
                }
            },
        }
        return;
    }
    let json = D::field(statement, field);
    // Strings compare as text (or wildcard) in every case.
    let (is_string, text) = (D::is_string(&json), D::text(&json));
    match (&value.like, op) {
        (Some(like), CompareOp::Eq) => {
            let like = statement.text(like);
            statement.push(&format!(
                "(({is_string} AND {text} LIKE {like} ESCAPE '\\')"
            ));
        }
        _ => {
            let literal = statement.text(&value.text);
            statement.push(&format!("(({is_string} AND {text} {sql_op} {literal})"));
        }
    }
    if let Some(number) = value.number {
        let number = statement.bind(Bind::Real(number));
        statement.push(&format!(
            " OR ({} AND {} {sql_op} {number})",
            D::is_number(&json),
            D::number(&json)
        ));
    }
    if let (Some(flag), CompareOp::Eq) = (value.boolean, op) {
        statement.push(&format!(" OR {}", D::is_boolean(&json, flag)));
    }
    statement.push(")");
}
