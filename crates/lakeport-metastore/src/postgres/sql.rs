//! Translates a [`ListQuery`] into PostgreSQL SQL over the JSONB documents and their indexed
//! columns, with the same meaning as the SQLite translation (`sqlite/sql.rs`): the same
//! type rules per JSON value, the same byte-wise text order (`COLLATE "C"`), objects without
//! a sort field last in both directions, and `NULL` columns first in ascending order as
//! SQLite sorts them. Every value is a bound parameter; field names only ever reach the SQL
//! text as bound `text[]` paths.

use lakeport_domain::query::{CompareOp, Filter, ListQuery, ObjectKind, TagValue, Value};
use tokio_postgres::types::{ToSql, Type};

/// A value bound to a `$n` placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
    Real(f64),
    /// A JSON path for `#>`.
    Path(Vec<String>),
}

impl Bind {
    /// Returns the value with its PostgreSQL type, for `query_typed`.
    pub(crate) fn typed(&self) -> (&(dyn ToSql + Sync), Type) {
        match self {
            Bind::Text(text) => (text, Type::TEXT),
            Bind::Int(int) => (int, Type::INT8),
            Bind::Real(real) => (real, Type::FLOAT8),
            Bind::Path(path) => (path, Type::TEXT_ARRAY),
        }
    }
}

/// The indexed columns of one Catalog table: top-level field name → column.
pub(crate) struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
}

pub(crate) struct Column {
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

pub(crate) fn table(kind: ObjectKind) -> &'static Table {
    match kind {
        ObjectKind::Dataset => &DATASETS,
        ObjectKind::Batch => &BATCHES,
        ObjectKind::DatasetFile => &DATASET_FILES,
    }
}

/// A SQL statement under construction with its bound values.
#[derive(Clone)]
pub(crate) struct Statement {
    pub sql: String,
    pub binds: Vec<Bind>,
}

impl Statement {
    fn new(sql: String, org: &str, sandbox: &str) -> Self {
        Self {
            sql,
            binds: vec![Bind::Text(org.to_owned()), Bind::Text(sandbox.to_owned())],
        }
    }

    /// Binds a value and returns its placeholder.
    fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    fn text(&mut self, value: &str) -> String {
        self.bind(Bind::Text(value.to_owned()))
    }

    /// Returns a `jsonb` expression for the value at `path` (SQL `NULL` when absent).
    ///
    /// `#>` indexes arrays by integer path elements while SQLite's `$."0"` only names object
    /// keys, so a path with an integer-like element only descends through objects.
    fn json(&mut self, path: &[String]) -> String {
        let value = format!("(doc #> {}::text[])", self.bind(Bind::Path(path.to_vec())));
        let guards: Vec<String> = (1..path.len())
            .filter(|&index| looks_like_index(&path[index]))
            .map(|index| {
                let parent = self.bind(Bind::Path(path[..index].to_vec()));
                format!("jsonb_typeof(doc #> {parent}::text[]) = 'object'")
            })
            .collect();
        if guards.is_empty() {
            value
        } else {
            format!("(CASE WHEN {} THEN {value} END)", guards.join(" AND "))
        }
    }

    fn push(&mut self, sql: &str) {
        self.sql.push_str(sql);
    }
}

fn looks_like_index(key: &str) -> bool {
    let digits = key.strip_prefix('-').unwrap_or(key);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The text of a JSON string value, compared byte-wise like SQLite's `BINARY` collation.
fn text_of(json: &str) -> String {
    format!("(({json} #>> '{{}}') COLLATE \"C\")")
}

/// Builds `SELECT body … ORDER BY … LIMIT … OFFSET …` for one page.
pub(crate) fn select_page(
    kind: ObjectKind,
    org: &str,
    sandbox: &str,
    query: &ListQuery,
) -> Statement {
    let table = table(kind);
    let mut statement = Statement::new(
        format!(
            "SELECT body FROM {} WHERE org = $1 AND sandbox = $2",
            table.name
        ),
        org,
        sandbox,
    );
    push_filters(&mut statement, table, query);
    statement.push(" ORDER BY ");
    for key in &query.order {
        let direction = if key.descending { " DESC" } else { " ASC" };
        match find_column(table, &key.field) {
            Some(column) => {
                statement.push(column.name);
                statement.push(direction);
                if column.nullable {
                    // SQLite sorts NULL as the smallest value.
                    statement.push(if key.descending {
                        " NULLS LAST"
                    } else {
                        " NULLS FIRST"
                    });
                }
            }
            None if key.field == "version" => {
                statement.push("version_key");
                statement.push(direction);
            }
            None => {
                // Objects without the field sort last in both directions (spec §2.2.2);
                // present values sort as SQLite orders `json_extract`: JSON null, then
                // numbers and booleans (as 1/0) numerically, then text.
                let json = statement.json(std::slice::from_ref(&key.field));
                let sort_keys = [
                    format!(
                        "CASE jsonb_typeof({json}) WHEN 'null' THEN 0 WHEN 'number' THEN 1 WHEN 'boolean' THEN 1 ELSE 2 END"
                    ),
                    format!(
                        "CASE jsonb_typeof({json}) WHEN 'number' THEN ({json})::float8 WHEN 'boolean' THEN (CASE WHEN {json} = 'true'::jsonb THEN 1 ELSE 0 END) END"
                    ),
                    format!(
                        "(CASE jsonb_typeof({json}) WHEN 'string' THEN {json} #>> '{{}}' WHEN 'object' THEN {json}::text WHEN 'array' THEN {json}::text END) COLLATE \"C\""
                    ),
                ];
                statement.push(&format!("({json} IS NULL) ASC"));
                for sort_key in sort_keys {
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
pub(crate) fn select_count(
    kind: ObjectKind,
    org: &str,
    sandbox: &str,
    query: &ListQuery,
) -> Statement {
    let table = table(kind);
    let mut statement = Statement::new(
        format!(
            "SELECT COUNT(*) FROM {} WHERE org = $1 AND sandbox = $2",
            table.name
        ),
        org,
        sandbox,
    );
    push_filters(&mut statement, table, query);
    statement
}

fn find_column(table: &Table, field: &str) -> Option<&'static Column> {
    table.columns.iter().find(|column| column.field == field)
}

fn push_filters(statement: &mut Statement, table: &'static Table, query: &ListQuery) {
    for filter in &query.filters {
        statement.push(" AND ");
        push_filter(statement, table, filter);
    }
}

fn push_filter(statement: &mut Statement, table: &'static Table, filter: &Filter) {
    match filter {
        Filter::AnyOf {
            field,
            values,
            negated,
        } => {
            // Objects without the field never match a simple filter (spec §2.2.3).
            push_exists(statement, field);
            statement.push(if *negated { " AND NOT (" } else { " AND (" });
            for (index, value) in values.iter().enumerate() {
                if index > 0 {
                    statement.push(" OR ");
                }
                push_compare(statement, table, field, CompareOp::Eq, value);
            }
            statement.push(")");
        }
        Filter::Exists { field, present } => {
            if !present {
                statement.push("NOT ");
            }
            push_exists(statement, field);
        }
        Filter::Compare { field, op, value } => {
            if *op == CompareOp::Ne {
                // A missing field compares as NULL; `f!=v` matches objects without `f`.
                statement.push("NOT COALESCE((");
                push_compare(statement, table, field, CompareOp::Eq, value);
                statement.push("), FALSE)");
            } else {
                push_compare(statement, table, field, *op, value);
            }
        }
        Filter::Matches { field, pattern } => {
            let json = statement.json(field);
            let pattern = statement.text(&to_postgres_regex(pattern));
            statement.push(&format!(
                "(jsonb_typeof({json}) = 'string' AND ({json} #>> '{{}}') ~ {pattern})"
            ));
        }
        Filter::Tag { name, value } => {
            // Like SQLite's json_each: an object's values are the items, and a scalar tag
            // value is a one-item list.
            let name = statement.text(name);
            statement.push(&format!(
                "EXISTS (SELECT 1 FROM jsonb_each(CASE WHEN jsonb_typeof(doc -> 'tags') = 'object' THEN doc -> 'tags' END) AS tag \
                 CROSS JOIN LATERAL jsonb_array_elements(CASE jsonb_typeof(tag.value) WHEN 'array' THEN tag.value WHEN 'object' THEN (SELECT jsonb_agg(member.value) FROM jsonb_each(tag.value) AS member) ELSE jsonb_build_array(tag.value) END) AS item \
                 WHERE tag.key = {name}"
            ));
            match value {
                TagValue::Any => {}
                TagValue::Exact(text) => {
                    let text = statement.text(text);
                    statement.push(&format!(
                        " AND jsonb_typeof(item.value) = 'string' AND (item.value #>> '{{}}') = {text}"
                    ));
                }
                TagValue::Prefix(prefix) => {
                    // SQLite's substr() reads numbers as their text too.
                    let prefix = statement.text(prefix);
                    statement.push(&format!(
                        " AND jsonb_typeof(item.value) IN ('string', 'number') AND starts_with(item.value #>> '{{}}', {prefix})"
                    ));
                }
            }
            statement.push(")");
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
                statement.push(column);
                statement.push(if *negated { " NOT IN (" } else { " IN (" });
                push_list(statement, ids);
                statement.push(")");
                return;
            }
            if *negated {
                statement.push("NOT ");
            }
            let relation = statement.text(relation);
            statement.push(&format!(
                "EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(doc -> 'relatedObjects') = 'array' THEN doc -> 'relatedObjects' END) AS related \
                 WHERE jsonb_typeof(related -> 'type') = 'string' AND (related ->> 'type') = {relation} \
                 AND jsonb_typeof(related -> 'id') = 'string' AND (related ->> 'id') IN ("
            ));
            push_list(statement, ids);
            statement.push("))");
        }
    }
}

fn push_list(statement: &mut Statement, ids: &[String]) {
    for (index, id) in ids.iter().enumerate() {
        if index > 0 {
            statement.push(", ");
        }
        let placeholder = statement.text(id);
        statement.push(&placeholder);
    }
}

fn push_exists(statement: &mut Statement, field: &[String]) {
    let json = statement.json(field);
    statement.push(&format!("{json} IS NOT NULL"));
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
fn push_compare(
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
                // An integral literal binds as BIGINT so the column's index stays usable.
                let number = if number.fract() == 0.0 && number.abs() < 9.0e15 {
                    statement.bind(Bind::Int(number as i64))
                } else {
                    statement.bind(Bind::Real(number))
                };
                statement.push(&format!("{name} {sql_op} {number}"));
            }
            (true, None) => {
                let text = statement.text(&value.text);
                statement.push(&format!("({name}::text COLLATE \"C\") {sql_op} {text}"));
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
    let json = statement.json(field);
    // Strings compare as text (or wildcard) in every case.
    let text = text_of(&json);
    match (&value.like, op) {
        (Some(like), CompareOp::Eq) => {
            let like = statement.text(like);
            statement.push(&format!(
                "((jsonb_typeof({json}) = 'string' AND {text} LIKE {like} ESCAPE '\\')"
            ));
        }
        _ => {
            let literal = statement.text(&value.text);
            statement.push(&format!(
                "((jsonb_typeof({json}) = 'string' AND {text} {sql_op} {literal})"
            ));
        }
    }
    if let Some(number) = value.number {
        let number = statement.bind(Bind::Real(number));
        statement.push(&format!(
            " OR (jsonb_typeof({json}) = 'number' AND ({json})::float8 {sql_op} {number})"
        ));
    }
    if let (Some(flag), CompareOp::Eq) = (value.boolean, op) {
        statement.push(&format!(
            " OR {json} = '{}'::jsonb",
            if flag { "true" } else { "false" }
        ));
    }
    statement.push(")");
}

/// Rewrites the Rust `regex` syntax the domain validated into PostgreSQL's ARE dialect where
/// the two differ in common patterns: word boundaries (`\b`, `\B` are `\y`, `\Y`), the end
/// of text (`\z` is `\Z`) and named groups (`(?P<name>…)` and `(?<name>…)` are plain groups).
pub(crate) fn to_postgres_regex(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => {
                let Some(next) = chars.next() else {
                    out.push(ch);
                    break;
                };
                match (in_class, next) {
                    (false, 'b') => out.push_str("\\y"),
                    (false, 'B') => out.push_str("\\Y"),
                    (false, 'z') => out.push_str("\\Z"),
                    _ => {
                        out.push('\\');
                        out.push(next);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push(ch);
                // A leading `]` (after an optional `^`) is a literal in both dialects.
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push(']');
                    chars.next();
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(ch);
            }
            '(' if !in_class && chars.peek() == Some(&'?') => {
                let rest: String = chars.clone().collect();
                let name_start = if rest.starts_with("?P<") {
                    Some(3)
                } else if rest.starts_with("?<")
                    && !rest.starts_with("?<=")
                    && !rest.starts_with("?<!")
                {
                    Some(2)
                } else {
                    None
                };
                match name_start.and_then(|start| rest[start..].find('>').map(|end| start + end)) {
                    Some(end) => {
                        out.push('(');
                        for _ in 0..rest[..=end].chars().count() {
                            chars.next();
                        }
                    }
                    None => out.push(ch),
                }
            }
            _ => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::to_postgres_regex;

    #[test]
    fn regex_dialect_differences_are_rewritten() {
        for (rust, postgres) in [
            ("^[ab]", "^[ab]"),
            (r"\bword\b", r"\yword\y"),
            (r"\Bx\z", r"\Yx\Z"),
            (r"[\b]", r"[\b]"),
            (r"(?P<year>\d{4})-(?<m>\d\d)", r"(\d{4})-(\d\d)"),
            (r"(?i)^a(?:b|c)", r"(?i)^a(?:b|c)"),
            (r"[]b]\\b", r"[]b]\\b"),
        ] {
            assert_eq!(to_postgres_regex(rust), postgres, "{rust}");
        }
    }
}
