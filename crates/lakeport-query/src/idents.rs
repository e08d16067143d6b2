//! Case-insensitive field names, as Adobe's Query Service has them: XDM fields are camel
//! case (`eventType`, `web.webPageDetails.name`) and AEP's SQL (Spark) resolves them
//! unquoted and in any case, while DataFusion, like PostgreSQL, folds an unquoted identifier
//! to lower case and then finds no `eventtype`, even for `eventType` written as spelled.
//! Before a statement is planned, each unquoted word that names, in any case, exactly one
//! field with capitals of the tables in scope is quoted with the field's own spelling.
//! Keywords, words followed by `(` (functions), table names, words naming no field, and
//! names two fields share in different cases are left as written.

use std::collections::HashMap;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// Nested fields walked at most this deep (XDM schemas nest a handful of levels).
const MAX_DEPTH: usize = 32;

/// The field names of the tables in scope, by their lower-case form: the spelling to quote,
/// or None when names differing only in case make the word ambiguous.
#[derive(Debug, Default, Clone)]
pub(crate) struct FieldNames {
    names: HashMap<String, Option<String>>,
}

impl FieldNames {
    /// The names of every field, nested ones included, of the tables registered in the
    /// context's default schema.
    pub(crate) async fn of(context: &SessionContext) -> Self {
        let mut names = Self::default();
        let state = context.state();
        let catalog_name = &state.config_options().catalog.default_catalog;
        let schema_name = &state.config_options().catalog.default_schema;
        let Some(schema) = context
            .catalog(catalog_name)
            .and_then(|catalog| catalog.schema(schema_name))
        else {
            return names;
        };
        let tables = schema.table_names();
        for table in &tables {
            if let Ok(Some(provider)) = schema.table(table).await {
                names.add_schema(&provider.schema());
            }
        }
        // A word that names a table stays a table name.
        for table in tables {
            names.names.insert(table.to_lowercase(), None);
        }
        names
    }

    /// Adds the fields of a schema.
    pub(crate) fn add_schema(&mut self, schema: &Schema) {
        for field in schema.fields() {
            self.add_field(field, 0);
        }
    }

    fn add_field(&mut self, field: &Field, depth: usize) {
        let name = field.name();
        // An all-lower-case name is what folding finds anyway.
        if name.chars().any(char::is_uppercase) {
            let spelling = self
                .names
                .entry(name.to_lowercase())
                .or_insert_with(|| Some(name.clone()));
            if spelling.as_deref() != Some(name.as_str()) {
                *spelling = None;
            }
        } else if let Some(spelling) = self.names.get_mut(name.as_str()) {
            // `points` and `Points` both exist: the unquoted word means the lower one.
            *spelling = None;
        } else {
            self.names.insert(name.clone(), None);
        }
        if depth >= MAX_DEPTH {
            return;
        }
        match field.data_type() {
            DataType::Struct(fields) => {
                for child in fields {
                    self.add_field(child, depth + 1);
                }
            }
            DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
                self.add_field(item, depth + 1);
            }
            DataType::Map(entries, _) => self.add_field(entries, depth + 1),
            _ => {}
        }
    }

    /// Returns `sql` with each unquoted word that names exactly one field in another case
    /// quoted as that field is spelled; `sql` itself when there is nothing to quote or it
    /// does not tokenize (the planner then reports the syntax error).
    pub(crate) fn fold(&self, sql: &str) -> String {
        if !self.names.values().any(Option::is_some) {
            return sql.to_owned();
        }
        let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
            return sql.to_owned();
        };
        let mut out = String::with_capacity(sql.len() + 16);
        let mut changed = false;
        for (index, token) in tokens.iter().enumerate() {
            let spelling = match token {
                // Keywords keep the statement's shape; called words are functions.
                Token::Word(word)
                    if word.quote_style.is_none()
                        && word.keyword == Keyword::NoKeyword
                        && !calls(&tokens, index) =>
                {
                    self.names
                        .get(&word.value.to_lowercase())
                        .and_then(Option::as_deref)
                }
                _ => None,
            };
            match spelling {
                Some(spelling) => {
                    out.push('"');
                    out.push_str(&spelling.replace('"', "\"\""));
                    out.push('"');
                    changed = true;
                }
                None => out.push_str(&token.to_string()),
            }
        }
        if changed { out } else { sql.to_owned() }
    }
}

/// Returns true when the word at `index` is called: the next token that is not white space
/// is `(`.
fn calls(tokens: &[Token], index: usize) -> bool {
    tokens[index + 1..]
        .iter()
        .find(|token| !matches!(token, Token::Whitespace(_)))
        .is_some_and(|token| matches!(token, Token::LParen))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> FieldNames {
        let web = Field::new(
            "web",
            DataType::Struct(
                vec![Field::new(
                    "webPageDetails",
                    DataType::Struct(vec![Field::new("name", DataType::Utf8, true)].into()),
                    true,
                )]
                .into(),
            ),
            true,
        );
        let mut names = FieldNames::default();
        names.add_schema(&Schema::new(vec![
            Field::new("_id", DataType::Utf8, true),
            Field::new("eventType", DataType::Utf8, true),
            Field::new("Points", DataType::Int64, true),
            Field::new("points", DataType::Int64, true),
            Field::new("Score", DataType::Int64, true),
            Field::new("SCORE", DataType::Int64, true),
            web,
        ]));
        names
    }

    #[test]
    fn unquoted_words_take_the_spelling_of_the_one_field_they_name() {
        let names = names();
        assert_eq!(
            names.fold(
                "SELECT eventtype, web.webPageDetails.name FROM t WHERE EVENTTYPE = 'eventType'"
            ),
            "SELECT \"eventType\", web.\"webPageDetails\".name FROM t WHERE \"eventType\" = 'eventType'"
        );
        // Quoted, called, or ambiguous: left as written.
        for sql in [
            "SELECT \"eventtype\" FROM t",
            "SELECT EventType (1) FROM t",
            "SELECT points, score FROM t",
            "SELECT count(*) FROM t",
        ] {
            assert_eq!(names.fold(sql), sql);
        }
        // Nothing to fold, or not SQL at all: the text as given.
        assert_eq!(
            FieldNames::default().fold("SELECT eventtype"),
            "SELECT eventtype"
        );
        assert_eq!(names.fold("SELECT 'unterminated"), "SELECT 'unterminated");
    }
}

#[cfg(test)]
mod context_tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    use super::FieldNames;

    #[tokio::test]
    async fn the_names_are_those_of_the_registered_tables() {
        let context = SessionContext::new();
        let schema = Arc::new(Schema::new(vec![Field::new(
            "eventType",
            DataType::Utf8,
            true,
        )]));
        let table = MemTable::try_new(schema, vec![vec![]]).unwrap();
        context.register_table("events", Arc::new(table)).unwrap();
        let names = FieldNames::of(&context).await;
        assert_eq!(
            names.fold("SELECT eventtype FROM events"),
            "SELECT \"eventType\" FROM events"
        );
    }
}
