//! Translates a [`ListQuery`] into SQLite SQL over the JSON documents and their indexed
//! columns. Every value is a bound parameter; field names only ever reach the SQL text as
//! bound JSON paths.

use lakeport_domain::query::{CompareOp, Filter, ListQuery, ObjectKind, TagValue, Value};

/// A value bound to a `?` placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
    Real(f64),
}

/// The indexed columns of one Catalog table: top-level field name → column.
pub(crate) struct Table {
    pub name: &'static str,
    /// Columns that hold a top-level field, with whether the column is an integer.
    pub columns: &'static [(&'static str, &'static str, ColumnType)],
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnType {
    Text,
    Integer,
}

const DATASETS: Table = Table {
    name: "datasets",
    columns: &[
        ("id", "id", ColumnType::Text),
        ("created", "created", ColumnType::Integer),
        ("updated", "updated", ColumnType::Integer),
        ("name", "name", ColumnType::Text),
    ],
};

const BATCHES: Table = Table {
    name: "batches",
    columns: &[
        ("id", "id", ColumnType::Text),
        ("created", "created", ColumnType::Integer),
        ("updated", "updated", ColumnType::Integer),
        ("status", "status", ColumnType::Text),
        ("externalId", "external_id", ColumnType::Text),
    ],
};

const DATASET_FILES: Table = Table {
    name: "dataset_files",
    columns: &[
        ("id", "id", ColumnType::Text),
        ("created", "created", ColumnType::Integer),
        ("updated", "updated", ColumnType::Integer),
        ("dataSetId", "dataset_id", ColumnType::Text),
        ("batchId", "batch_id", ColumnType::Text),
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
pub(crate) struct Statement {
    pub sql: String,
    pub binds: Vec<Bind>,
}

impl Statement {
    fn text(&mut self, value: &str) {
        self.sql.push('?');
        self.binds.push(Bind::Text(value.to_owned()));
    }

    fn path(&mut self, path: &[String]) {
        let mut json_path = String::from("$");
        for key in path {
            json_path.push_str(".\"");
            json_path.push_str(key);
            json_path.push('"');
        }
        self.sql.push('?');
        self.binds.push(Bind::Text(json_path));
    }
}

/// Builds `SELECT doc … ORDER BY … LIMIT … OFFSET …` for one page.
pub(crate) fn select_page(
    kind: ObjectKind,
    org: &str,
    sandbox: &str,
    query: &ListQuery,
) -> Statement {
    let table = table(kind);
    let mut statement = Statement {
        sql: format!(
            "SELECT doc FROM {} WHERE org = ? AND sandbox = ?",
            table.name
        ),
        binds: vec![Bind::Text(org.to_owned()), Bind::Text(sandbox.to_owned())],
    };
    push_filters(&mut statement, table, query);
    statement.sql.push_str(" ORDER BY ");
    for key in &query.order {
        match column(table, &key.field) {
            Some((column, _)) => statement.sql.push_str(column),
            None if key.field == "version" => statement.sql.push_str("version_key"),
            None => {
                // Objects without the field sort last in both directions (spec §2.2.2).
                statement.sql.push_str("(json_type(doc, ");
                statement.path(std::slice::from_ref(&key.field));
                statement.sql.push_str(") IS NULL), json_extract(doc, ");
                statement.path(std::slice::from_ref(&key.field));
                statement.sql.push(')');
            }
        }
        statement
            .sql
            .push_str(if key.descending { " DESC, " } else { " ASC, " });
    }
    // The default order, and the tie-breaker that keeps offset paging stable (spec §8.17).
    statement
        .sql
        .push_str("created ASC, id ASC LIMIT ? OFFSET ?");
    statement.binds.push(Bind::Int(i64::from(query.limit)));
    statement
        .binds
        .push(Bind::Int(i64::try_from(query.start).unwrap_or(i64::MAX)));
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
    let mut statement = Statement {
        sql: format!(
            "SELECT COUNT(*) FROM {} WHERE org = ? AND sandbox = ?",
            table.name
        ),
        binds: vec![Bind::Text(org.to_owned()), Bind::Text(sandbox.to_owned())],
    };
    push_filters(&mut statement, table, query);
    statement
}

fn column(table: &Table, field: &str) -> Option<(&'static str, ColumnType)> {
    table
        .columns
        .iter()
        .find(|(name, _, _)| *name == field)
        .map(|(_, column, column_type)| (*column, *column_type))
}

fn push_filters(statement: &mut Statement, table: &Table, query: &ListQuery) {
    for filter in &query.filters {
        statement.sql.push_str(" AND ");
        push_filter(statement, table, filter);
    }
}

fn push_filter(statement: &mut Statement, table: &Table, filter: &Filter) {
    match filter {
        Filter::AnyOf {
            field,
            values,
            negated,
        } => {
            // Objects without the field never match a simple filter (spec §2.2.3).
            push_exists(statement, field);
            statement
                .sql
                .push_str(if *negated { " AND NOT (" } else { " AND (" });
            for (index, value) in values.iter().enumerate() {
                if index > 0 {
                    statement.sql.push_str(" OR ");
                }
                push_compare(statement, table, field, CompareOp::Eq, value);
            }
            statement.sql.push(')');
        }
        Filter::Exists { field, present } => {
            if !present {
                statement.sql.push_str("NOT ");
            }
            push_exists(statement, field);
        }
        Filter::Compare { field, op, value } => {
            if *op == CompareOp::Ne {
                // A missing field compares as NULL; `f!=v` matches objects without `f`.
                statement.sql.push_str("NOT COALESCE((");
                push_compare(statement, table, field, CompareOp::Eq, value);
                statement.sql.push_str("), 0)");
            } else {
                push_compare(statement, table, field, *op, value);
            }
        }
        Filter::Matches { field, pattern } => {
            statement.sql.push_str("(json_type(doc, ");
            statement.path(field);
            statement.sql.push_str(") = 'text' AND json_extract(doc, ");
            statement.path(field);
            statement.sql.push_str(") REGEXP ");
            statement.text(pattern);
            statement.sql.push(')');
        }
        Filter::Tag { name, value } => {
            statement.sql.push_str(
                "EXISTS (SELECT 1 FROM json_each(doc, '$.tags') AS tag, json_each(tag.value) AS item WHERE tag.key = ",
            );
            statement.text(name);
            match value {
                TagValue::Any => {}
                TagValue::Exact(text) => {
                    statement.sql.push_str(" AND item.value = ");
                    statement.text(text);
                }
                TagValue::Prefix(prefix) => {
                    statement.sql.push_str(" AND substr(item.value, 1, length(");
                    statement.text(prefix);
                    statement.sql.push_str(")) = ");
                    statement.text(prefix);
                }
            }
            statement.sql.push(')');
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
                statement.sql.push_str(column);
                statement
                    .sql
                    .push_str(if *negated { " NOT IN (" } else { " IN (" });
                push_list(statement, ids);
                statement.sql.push(')');
                return;
            }
            if *negated {
                statement.sql.push_str("NOT ");
            }
            statement.sql.push_str(
                "EXISTS (SELECT 1 FROM json_each(doc, '$.relatedObjects') AS related WHERE json_extract(related.value, '$.type') = ",
            );
            statement.text(relation);
            statement
                .sql
                .push_str(" AND json_extract(related.value, '$.id') IN (");
            push_list(statement, ids);
            statement.sql.push_str("))");
        }
    }
}

fn push_list(statement: &mut Statement, ids: &[String]) {
    for (index, id) in ids.iter().enumerate() {
        if index > 0 {
            statement.sql.push_str(", ");
        }
        statement.text(id);
    }
}

fn push_exists(statement: &mut Statement, field: &[String]) {
    statement.sql.push_str("json_type(doc, ");
    statement.path(field);
    statement.sql.push_str(") IS NOT NULL");
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
    table: &Table,
    field: &[String],
    op: CompareOp,
    value: &Value,
) {
    let sql_op = operator(op);
    let top_level = (field.len() == 1).then(|| field[0].as_str());
    if top_level == Some("version")
        && let Some(key) = value.version_key
    {
        statement.sql.push_str(&format!("version_key {sql_op} ?"));
        statement.binds.push(Bind::Int(key));
        return;
    }
    if let Some((column, column_type)) = top_level.and_then(|f| column(table, f)) {
        match (column_type, value.number) {
            (ColumnType::Integer, Some(number)) => {
                statement.sql.push_str(&format!("{column} {sql_op} ?"));
                statement.binds.push(Bind::Real(number));
            }
            (ColumnType::Integer, None) => {
                statement
                    .sql
                    .push_str(&format!("CAST({column} AS TEXT) {sql_op} "));
                statement.text(&value.text);
            }
            (ColumnType::Text, _) => match (&value.like, op) {
                (Some(like), CompareOp::Eq) => {
                    statement.sql.push_str(&format!("{column} LIKE "));
                    statement.text(like);
                    statement.sql.push_str(" ESCAPE '\\'");
                }
                _ => {
                    statement.sql.push_str(&format!("{column} {sql_op} "));
                    statement.text(&value.text);
                }
            },
        }
        return;
    }
    statement.sql.push('(');
    // Strings compare as text (or wildcard) in every case.
    statement.sql.push_str("(json_type(doc, ");
    statement.path(field);
    statement.sql.push_str(") = 'text' AND json_extract(doc, ");
    statement.path(field);
    match (&value.like, op) {
        (Some(like), CompareOp::Eq) => {
            statement.sql.push_str(") LIKE ");
            statement.text(like);
            statement.sql.push_str(" ESCAPE '\\')");
        }
        _ => {
            statement.sql.push_str(&format!(") {sql_op} "));
            statement.text(&value.text);
            statement.sql.push(')');
        }
    }
    if let Some(number) = value.number {
        statement.sql.push_str(" OR (json_type(doc, ");
        statement.path(field);
        statement
            .sql
            .push_str(") IN ('integer', 'real') AND json_extract(doc, ");
        statement.path(field);
        statement.sql.push_str(&format!(") {sql_op} ?)"));
        statement.binds.push(Bind::Real(number));
    }
    if let (Some(flag), CompareOp::Eq) = (value.boolean, op) {
        statement.sql.push_str(" OR json_type(doc, ");
        statement.path(field);
        statement
            .sql
            .push_str(if flag { ") = 'true'" } else { ") = 'false'" });
    }
    statement.sql.push(')');
}
