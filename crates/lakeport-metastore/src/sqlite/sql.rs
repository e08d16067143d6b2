//! SQLite's side of the shared list SQL ([`crate::sql`]): `json_type`/`json_extract` over
//! the document text with a bound JSON path, `json_each` for tags and related objects, and
//! the `regexp` function registered on each connection.

use lakeport_domain::query::TagValue;

use crate::backend::{FixedSql, Lock};
use crate::sql::{Bind, Dialect, Statement};

pub struct Sqlite;

/// Turns a path into SQLite's JSON path syntax, `$."a"."b"`.
pub(crate) fn json_path(path: &[String]) -> String {
    let mut json_path = String::from("$");
    for key in path {
        json_path.push_str(".\"");
        json_path.push_str(key);
        json_path.push('"');
    }
    json_path
}

impl Dialect for Sqlite {
    const BODY: &'static str = "doc";

    fn field(statement: &mut Statement, path: &[String]) -> String {
        statement.bind(Bind::Path(path.to_vec()))
    }

    fn present(field: &str) -> String {
        format!("json_type(doc, {field}) IS NOT NULL")
    }

    fn is_string(field: &str) -> String {
        format!("json_type(doc, {field}) = 'text'")
    }

    fn is_number(field: &str) -> String {
        format!("json_type(doc, {field}) IN ('integer', 'real')")
    }

    fn is_boolean(field: &str, flag: bool) -> String {
        format!("json_type(doc, {field}) = '{flag}'")
    }

    fn text(field: &str) -> String {
        format!("json_extract(doc, {field})")
    }

    fn number(field: &str) -> String {
        format!("json_extract(doc, {field})")
    }

    fn matches(statement: &mut Statement, field: &str, pattern: &str) -> String {
        let pattern = statement.text(pattern);
        format!("json_extract(doc, {field}) REGEXP {pattern}")
    }

    fn sort_keys(field: &str) -> Vec<String> {
        vec![format!("json_extract(doc, {field})")]
    }

    fn bytewise(expression: &str) -> String {
        expression.to_owned()
    }

    fn nulls(_descending: bool) -> &'static str {
        ""
    }

    fn tag(statement: &mut Statement, name: &str, value: &TagValue) -> String {
        let name = statement.text(name);
        let item = match value {
            TagValue::Any => String::new(),
            TagValue::Exact(text) => format!(" AND item.value = {}", statement.text(text)),
            TagValue::Prefix(prefix) => {
                let prefix = statement.text(prefix);
                format!(" AND substr(item.value, 1, length({prefix})) = {prefix}")
            }
        };
        format!(
            "EXISTS (SELECT 1 FROM json_each(doc, '$.tags') AS tag, json_each(tag.value) AS item WHERE tag.key = {name}{item})"
        )
    }

    fn related(statement: &mut Statement, relation: &str, ids: &[String]) -> String {
        let relation = statement.text(relation);
        let ids = statement.list(ids);
        format!(
            "EXISTS (SELECT 1 FROM json_each(doc, '$.relatedObjects') AS related WHERE json_extract(related.value, '$.type') = {relation} AND json_extract(related.value, '$.id') IN ({ids}))"
        )
    }
}

/// One writer: what it reads stays as read until it commits, so nothing is locked.
impl FixedSql for Sqlite {
    const LOCKS: bool = false;
    const SKIP_LOCKED: &'static str = "";

    fn doc_columns() -> &'static str {
        "doc"
    }

    fn doc_values(placeholder: &str) -> String {
        placeholder.to_owned()
    }

    fn set_doc(placeholder: &str) -> String {
        format!("doc = {placeholder}")
    }

    fn contains(column: &str, placeholder: &str) -> String {
        format!("instr({column}, {placeholder}) > 0")
    }

    fn lock(_lock: Lock) -> &'static str {
        ""
    }
}
