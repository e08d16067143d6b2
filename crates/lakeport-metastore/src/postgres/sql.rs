//! PostgreSQL's side of the shared list SQL ([`crate::sql`]): `#>` over the JSONB
//! documents with bound `text[]` paths, `jsonb_typeof` for the JSON type rules SQLite's
//! `json_type` gives, `COLLATE "C"` for SQLite's byte-wise text order, explicit `NULLS
//! FIRST`/`LAST`, and Rust regexes rewritten into PostgreSQL's dialect.

use lakeport_domain::query::TagValue;
use tokio_postgres::types::{ToSql, Type};

use crate::backend::{FixedSql, Lock};
use crate::sql::{Bind, Dialect, Statement};

pub struct Postgres;

/// Returns a bound value with its PostgreSQL type, for `query_typed`.
pub(crate) fn typed(bind: &Bind) -> (&(dyn ToSql + Sync), Type) {
    match bind {
        Bind::Text(text) => (text, Type::TEXT),
        Bind::Int(int) => (int, Type::INT8),
        Bind::Real(real) => (real, Type::FLOAT8),
        Bind::Path(path) => (path, Type::TEXT_ARRAY),
    }
}

fn looks_like_index(key: &str) -> bool {
    let digits = key.strip_prefix('-').unwrap_or(key);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

impl Dialect for Postgres {
    const BODY: &'static str = "body";

    /// A `jsonb` expression for the value at `path` (SQL `NULL` when absent).
    ///
    /// `#>` indexes arrays by integer path elements while SQLite's `$."0"` only names object
    /// keys, so a path with an integer-like element only descends through objects.
    fn field(statement: &mut Statement, path: &[String]) -> String {
        let value = format!(
            "(doc #> {}::text[])",
            statement.bind(Bind::Path(path.to_vec()))
        );
        let guards: Vec<String> = (1..path.len())
            .filter(|&index| looks_like_index(&path[index]))
            .map(|index| {
                let parent = statement.bind(Bind::Path(path[..index].to_vec()));
                format!("jsonb_typeof(doc #> {parent}::text[]) = 'object'")
            })
            .collect();
        if guards.is_empty() {
            value
        } else {
            format!("(CASE WHEN {} THEN {value} END)", guards.join(" AND "))
        }
    }

    fn present(field: &str) -> String {
        format!("{field} IS NOT NULL")
    }

    fn is_string(field: &str) -> String {
        format!("jsonb_typeof({field}) = 'string'")
    }

    fn is_number(field: &str) -> String {
        format!("jsonb_typeof({field}) = 'number'")
    }

    fn is_boolean(field: &str, flag: bool) -> String {
        format!("{field} = '{flag}'::jsonb")
    }

    fn text(field: &str) -> String {
        format!("(({field} #>> '{{}}') COLLATE \"C\")")
    }

    fn number(field: &str) -> String {
        format!("({field})::float8")
    }

    fn matches(statement: &mut Statement, field: &str, pattern: &str) -> String {
        let pattern = statement.text(&to_postgres_regex(pattern));
        format!("({field} #>> '{{}}') ~ {pattern}")
    }

    fn sort_keys(json: &str) -> Vec<String> {
        vec![
            format!(
                "CASE jsonb_typeof({json}) WHEN 'null' THEN 0 WHEN 'number' THEN 1 WHEN 'boolean' THEN 1 ELSE 2 END"
            ),
            format!(
                "CASE jsonb_typeof({json}) WHEN 'number' THEN ({json})::float8 WHEN 'boolean' THEN (CASE WHEN {json} = 'true'::jsonb THEN 1 ELSE 0 END) END"
            ),
            format!(
                "(CASE jsonb_typeof({json}) WHEN 'string' THEN {json} #>> '{{}}' WHEN 'object' THEN {json}::text WHEN 'array' THEN {json}::text END) COLLATE \"C\""
            ),
        ]
    }

    fn bytewise(expression: &str) -> String {
        format!("({expression} COLLATE \"C\")")
    }

    fn nulls(descending: bool) -> &'static str {
        // SQLite sorts NULL as the smallest value.
        if descending {
            " NULLS LAST"
        } else {
            " NULLS FIRST"
        }
    }

    fn tag(statement: &mut Statement, name: &str, value: &TagValue) -> String {
        let name = statement.text(name);
        let item = match value {
            TagValue::Any => String::new(),
            TagValue::Exact(text) => format!(
                " AND jsonb_typeof(item.value) = 'string' AND (item.value #>> '{{}}') = {}",
                statement.text(text)
            ),
            // SQLite's substr() reads numbers as their text too.
            TagValue::Prefix(prefix) => format!(
                " AND jsonb_typeof(item.value) IN ('string', 'number') AND starts_with(item.value #>> '{{}}', {})",
                statement.text(prefix)
            ),
        };
        format!(
            "EXISTS (SELECT 1 FROM jsonb_each(CASE WHEN jsonb_typeof(doc -> 'tags') = 'object' THEN doc -> 'tags' END) AS tag \
             CROSS JOIN LATERAL jsonb_array_elements(CASE jsonb_typeof(tag.value) WHEN 'array' THEN tag.value WHEN 'object' THEN (SELECT jsonb_agg(member.value) FROM jsonb_each(tag.value) AS member) ELSE jsonb_build_array(tag.value) END) AS item \
             WHERE tag.key = {name}{item})"
        )
    }

    fn related(statement: &mut Statement, relation: &str, ids: &[String]) -> String {
        let relation = statement.text(relation);
        let ids = statement.list(ids);
        format!(
            "EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(doc -> 'relatedObjects') = 'array' THEN doc -> 'relatedObjects' END) AS related \
             WHERE jsonb_typeof(related -> 'type') = 'string' AND (related ->> 'type') = {relation} \
             AND jsonb_typeof(related -> 'id') = 'string' AND (related ->> 'id') IN ({ids}))"
        )
    }
}

/// Rows read to be rewritten are locked; documents are stored twice, as JSONB (`doc`, what
/// filters read) and verbatim (`body`, what is returned, keeping key order).
impl FixedSql for Postgres {
    const LOCKS: bool = true;
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";

    fn doc_columns() -> &'static str {
        "doc, body"
    }

    fn doc_values(placeholder: &str) -> String {
        format!("{placeholder}::text::jsonb, {placeholder}::text")
    }

    fn set_doc(placeholder: &str) -> String {
        format!("doc = {placeholder}::text::jsonb, body = {placeholder}::text")
    }

    fn contains(column: &str, placeholder: &str) -> String {
        format!("strpos({column}, {placeholder}) > 0")
    }

    fn lock(lock: Lock) -> &'static str {
        match lock {
            Lock::None => "",
            Lock::Share => " FOR SHARE",
            Lock::Update => " FOR UPDATE",
        }
    }
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
