//! SNAPSHOT clauses (spec §11.3): `<table> SNAPSHOT AS OF b | SINCE a | BETWEEN a AND b`.
//!
//! DataFusion's parser does not know them, so a statement is rewritten first, at the token
//! level: the table and its clause become a read of a versioned table named
//! `"<table>@v<version>"` (a Delta version) or `"<table>@b<batch id>"` (the version the
//! batch's commit produced, from the Catalog), and SINCE / BETWEEN become the rows live at
//! the end that were not live at the start (`EXCEPT ALL`; DataFusion's leaves out every end
//! row identical to a start row, so a duplicate row added later is missed: a known deviation
//! from the spec's file-level difference). The versioned tables are then
//! registered for the one statement from the names it reads ([`versioned`]); `@` never
//! appears in a table name of the Catalog, so they cannot shadow a dataset.

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use lakeport_api::query::SqlError;

/// Separates a table's name from its version in a versioned table's name.
const MARK: char = '@';
/// The longest batch id a SNAPSHOT clause may name.
const MAX_BATCH_ID: usize = 64;

/// A point in a table's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Point {
    /// A Delta version of the table.
    Version(u64),
    /// The version a batch's commit produced.
    Batch(String),
}

/// One end of a SNAPSHOT range.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Bound {
    /// Before the first version.
    Head,
    /// The current version.
    Tail,
    At(Point),
}

/// Returns true when `sql` may hold a SNAPSHOT clause (a cheap test before tokenizing).
pub(crate) fn mentions(sql: &str) -> bool {
    sql.to_ascii_lowercase().contains("snapshot")
}

/// Returns the table and point of a versioned table's name, None for any other name.
pub(crate) fn versioned(name: &str) -> Option<(&str, Point)> {
    let (table, suffix) = name.rsplit_once(MARK)?;
    let point = if let Some(version) = suffix.strip_prefix('v') {
        Point::Version(version.parse().ok()?)
    } else {
        Point::Batch(suffix.strip_prefix('b')?.to_owned())
    };
    Some((table, point))
}

/// Returns the base table of a name as the Catalog knows it (a versioned name's table).
pub(crate) fn base_table(name: &str) -> &str {
    versioned(name).map_or(name, |(table, _)| table)
}

fn snapshot_error(message: impl Into<String>) -> SqlError {
    SqlError::new("22023", message)
}

fn syntax(message: impl Into<String>) -> SqlError {
    SqlError::new("42601", message)
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn versioned_name(table: &str, point: &Point) -> String {
    match point {
        Point::Version(version) => quoted(&format!("{table}{MARK}v{version}")),
        Point::Batch(batch) => quoted(&format!("{table}{MARK}b{batch}")),
    }
}

fn is_space(token: &Token) -> bool {
    matches!(token, Token::Whitespace(_))
}

fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

/// Rewrites every SNAPSHOT clause of `sql`; returns it unchanged when it holds none.
///
/// # Errors
/// 42601 for a clause that is not one of the three forms or that does not follow a table
/// name; 22023 for a range that ends at HEAD, a version that is not a number, or a batch id
/// that cannot be one.
pub(crate) fn rewrite(sql: &str) -> Result<String, SqlError> {
    if !mentions(sql) {
        return Ok(sql.to_owned());
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize()
        .map_err(|err| syntax(format!("syntax error: {err}")))?;
    if !tokens.iter().any(|token| is_word(token, "snapshot")) {
        return Ok(sql.to_owned());
    }
    // The output, one piece per token copied (with the token's index) or rewritten (None).
    let mut out: Vec<(String, Option<usize>)> = Vec::with_capacity(tokens.len());
    let mut index = 0;
    while index < tokens.len() {
        let token = &tokens[index];
        if !is_word(token, "snapshot") {
            out.push((token.to_string(), Some(index)));
            index += 1;
            continue;
        }
        // The table: the last token written, optionally `public.` before it.
        let last = out
            .iter()
            .rposition(|(piece, _)| !piece.trim().is_empty())
            .ok_or_else(|| syntax("SNAPSHOT must follow a table name"))?;
        let table = table_name(out[last].1.map(|at| &tokens[at]))?;
        let mut cut = last;
        if last >= 2 && out[last - 1].0 == "." && out[last - 2].0.eq_ignore_ascii_case("public") {
            cut = last - 2;
        }
        out.truncate(cut);
        let (clause, next) = clause(&tokens, index + 1)?;
        let replacement = match clause {
            Clause::AsOf(Bound::At(point)) => versioned_name(&table, &point),
            Clause::AsOf(Bound::Tail) => quoted(&table),
            Clause::AsOf(Bound::Head) => {
                return Err(snapshot_error(
                    "SNAPSHOT AS OF HEAD names no version: HEAD is before the first one",
                ));
            }
            Clause::Between(start, end) => {
                let end = match end {
                    Bound::At(point) => versioned_name(&table, &point),
                    Bound::Tail => quoted(&table),
                    Bound::Head => {
                        return Err(snapshot_error(
                            "a SNAPSHOT range cannot end at HEAD, which is before the first version",
                        ));
                    }
                };
                let start = match start {
                    Bound::Head => None,
                    Bound::Tail => Some(quoted(&table)),
                    Bound::At(point) => Some(versioned_name(&table, &point)),
                };
                match start {
                    None => end,
                    Some(start) => {
                        format!("(SELECT * FROM {end} EXCEPT ALL SELECT * FROM {start})")
                    }
                }
            }
        };
        out.push((replacement, None));
        // Keep `t.column` working: the read is aliased as the table unless an alias follows.
        let aliased = tokens[next..]
            .iter()
            .find(|token| !is_space(token))
            .is_some_and(|token| {
                matches!(token, Token::Word(word) if word.keyword == Keyword::AS || word.keyword == Keyword::NoKeyword || word.quote_style.is_some())
            });
        if !aliased {
            out.push((format!(" AS {}", quoted(&table)), None));
        }
        index = next;
    }
    Ok(out.into_iter().map(|(piece, _)| piece).collect())
}

/// The table name a token holds, as the Catalog has it (unquoted names folded to lower
/// case, as PostgreSQL folds them).
fn table_name(token: Option<&Token>) -> Result<String, SqlError> {
    match token {
        Some(Token::Word(word)) if word.quote_style.is_some() => Ok(word.value.clone()),
        Some(Token::Word(word)) if !is_reserved(word.keyword) => {
            Ok(word.value.to_ascii_lowercase())
        }
        _ => Err(syntax(
            "SNAPSHOT must follow a table name (not a sub-query or function)",
        )),
    }
}

fn is_reserved(keyword: Keyword) -> bool {
    matches!(
        keyword,
        Keyword::FROM
            | Keyword::JOIN
            | Keyword::SELECT
            | Keyword::WHERE
            | Keyword::ON
            | Keyword::AS
            | Keyword::AND
            | Keyword::OR
    )
}

enum Clause {
    AsOf(Bound),
    Between(Bound, Bound),
}

/// Reads the clause after SNAPSHOT from `tokens[at..]`; returns it and the index after it.
fn clause(tokens: &[Token], at: usize) -> Result<(Clause, usize), SqlError> {
    let mut index = at;
    let next = |index: &mut usize| -> Option<&Token> {
        while *index < tokens.len() && is_space(&tokens[*index]) {
            *index += 1;
        }
        let token = tokens.get(*index);
        *index += 1;
        token
    };
    let expected = || syntax("SNAPSHOT takes AS OF <id>, SINCE <id> or BETWEEN <id> AND <id>");
    let first = next(&mut index).ok_or_else(expected)?;
    if is_word(first, "as") {
        let of = next(&mut index).ok_or_else(expected)?;
        if !is_word(of, "of") {
            return Err(expected());
        }
        let bound = bound(next(&mut index))?;
        Ok((Clause::AsOf(bound), index))
    } else if is_word(first, "since") {
        let start = bound(next(&mut index))?;
        Ok((Clause::Between(start, Bound::Tail), index))
    } else if is_word(first, "between") {
        let start = bound(next(&mut index))?;
        let and = next(&mut index).ok_or_else(expected)?;
        if !is_word(and, "and") {
            return Err(expected());
        }
        let end = bound(next(&mut index))?;
        Ok((Clause::Between(start, end), index))
    } else {
        Err(expected())
    }
}

fn bound(token: Option<&Token>) -> Result<Bound, SqlError> {
    let expected = || {
        syntax("a snapshot id is a Delta version (a number), a batch id in quotes, HEAD or TAIL")
    };
    match token.ok_or_else(expected)? {
        Token::Number(text, _) => text
            .parse()
            .map(|version| Bound::At(Point::Version(version)))
            .map_err(|_| snapshot_error(format!("{text} is not a table version"))),
        Token::SingleQuotedString(text) => {
            if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
                return text
                    .parse()
                    .map(|version| Bound::At(Point::Version(version)))
                    .map_err(|_| snapshot_error(format!("{text} is not a table version")));
            }
            let valid = !text.is_empty()
                && text.len() <= MAX_BATCH_ID
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if valid {
                Ok(Bound::At(Point::Batch(text.clone())))
            } else {
                Err(snapshot_error(format!("{text:?} is not a batch id")))
            }
        }
        token if is_word(token, "head") => Ok(Bound::Head),
        token if is_word(token, "tail") => Ok(Bound::Tail),
        _ => Err(expected()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(sql: &str, expected: &str) {
        let actual = match rewrite(sql) {
            Ok(sql) => sql,
            Err(err) => format!("{} {}", err.code, err.message),
        };
        assert_eq!(actual, expected);
    }

    #[test]
    fn clauses_become_versioned_tables() {
        check("SELECT 1", "SELECT 1");
        check(
            "SELECT * FROM Events SNAPSHOT AS OF 3",
            "SELECT * FROM \"events@v3\" AS \"events\"",
        );
        check(
            "select e.a from public.events snapshot as of '01ABC' e where e.a > 1",
            "select e.a from \"events@b01ABC\" e where e.a > 1",
        );
        check(
            "SELECT * FROM events SNAPSHOT SINCE 2",
            "SELECT * FROM (SELECT * FROM \"events\" EXCEPT ALL SELECT * FROM \"events@v2\") AS \"events\"",
        );
        check(
            "SELECT * FROM events SNAPSHOT BETWEEN HEAD AND '7'",
            "SELECT * FROM \"events@v7\" AS \"events\"",
        );
        check(
            "SELECT * FROM events SNAPSHOT BETWEEN 'B1' AND TAIL;",
            "SELECT * FROM (SELECT * FROM \"events\" EXCEPT ALL SELECT * FROM \"events@bB1\") AS \"events\";",
        );
        check(
            "SELECT 'snapshot' AS snapshot_note FROM events",
            "SELECT 'snapshot' AS snapshot_note FROM events",
        );
        check(
            "SELECT * FROM events SNAPSHOT AS OF HEAD",
            "22023 SNAPSHOT AS OF HEAD names no version: HEAD is before the first one",
        );
        check(
            "SELECT * FROM events SNAPSHOT AS OF 'no good'",
            "22023 \"no good\" is not a batch id",
        );
        check(
            "SELECT * FROM events SNAPSHOT FROM 3",
            "42601 SNAPSHOT takes AS OF <id>, SINCE <id> or BETWEEN <id> AND <id>",
        );
        check(
            "SELECT * FROM (SELECT 1) SNAPSHOT AS OF 1",
            "42601 SNAPSHOT must follow a table name (not a sub-query or function)",
        );
        assert_eq!(versioned("events@v3"), Some(("events", Point::Version(3))));
        assert_eq!(
            versioned("events@b01ABC"),
            Some(("events", Point::Batch("01ABC".into())))
        );
        assert_eq!(versioned("events"), None);
        assert_eq!(base_table("events@v3"), "events");
    }
}
