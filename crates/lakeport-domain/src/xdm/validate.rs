//! The compiled row validator of spec §7.1–§7.2.
//!
//! [`Validator::compile`] turns a resolved (`xed-full`) XDM schema into a tree of nodes with
//! pre-compiled regexes, enum sets and numeric bounds, once per batch. [`Validator::validate`]
//! then converts and checks one parsed row in a single pass, moving the row through: values
//! that need no conversion are neither copied nor re-allocated, and a clean row allocates only
//! for the values it converts (a number into a string field, a date-time into its canonical
//! UTC form). A failing row reports every violation it has, each with its row pointer, schema
//! location and one of the row-error codes of spec §7.4.

mod compile;
mod formats;
mod node;
mod pattern;
pub mod plan;
mod walk;

#[cfg(test)]
mod differential;
#[cfg(test)]
mod tests;

use serde_json::Value;

pub use formats::{parse_date, parse_date_time};

use crate::error::{ErrorKind, HasKind};
use node::Node;
use walk::Walk;

/// A compiled XDM schema that converts and validates rows; compile once, share across
/// threads, reuse for every row of a batch.
#[derive(Debug)]
pub struct Validator {
    root: Node,
    options: ValidatorOptions,
}

/// How a [`Validator`] treats rows beyond what the schema says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorOptions {
    /// What happens to JSON properties the schema does not declare.
    pub unknown_fields: UnknownFields,
    /// The most fields (object properties, map entries and array items, at any depth) a row
    /// may have before it is a parsing error (spec §7.2 step 3).
    pub max_fields_per_row: usize,
}

impl Default for ValidatorOptions {
    fn default() -> Self {
        Self {
            unknown_fields: UnknownFields::default(),
            max_fields_per_row: 10_000,
        }
    }
}

/// What happens to a JSON property that the schema does not declare.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnknownFields {
    /// The property is dropped from the converted row without an error (spec §8.14).
    #[default]
    Drop,
    /// The property is a violation (`additionalProperties`, a conversion error).
    Reject,
}

/// The file format a row was read from; it decides which conversions are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// JSON Lines or a JSON array: values keep their JSON types.
    Json,
    /// CSV: every leaf arrives as a string, and only here do `"true"`/`"false"` convert to
    /// boolean.
    Csv,
    /// Parquet, decoded into JSON values by the caller: converted like JSON.
    Parquet,
}

/// A schema the validator cannot compile; the message names the schema location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "{location}: unresolved $ref {target:?}; the validator needs the resolved (xed-full) schema"
    )]
    UnresolvedRef { location: String, target: String },
    #[error("{location}: unresolved {keyword}; the validator needs the resolved (xed-full) schema")]
    UnresolvedComposition {
        location: String,
        keyword: &'static str,
    },
    #[error("{location}: a field definition must be a JSON object")]
    NotAFieldDefinition { location: String },
    #[error("{location}: the field has neither type nor meta:xdmType")]
    MissingType { location: String },
    #[error(
        "{location}: unknown type {type_name:?} (expected string, number, integer, boolean, object or array)"
    )]
    UnknownType { location: String, type_name: String },
    #[error(
        "{location}: unknown meta:xdmType {xdm_type:?} (expected string, number, long, int, short, byte, boolean, date, date-time, object, map or array)"
    )]
    UnknownXdmType { location: String, xdm_type: String },
    #[error("{location}: meta:xdmType {xdm_type:?} does not fit type {type_name:?}")]
    TypeMismatch {
        location: String,
        xdm_type: String,
        type_name: String,
    },
    #[error("{location}: {keyword} must be {expected}")]
    InvalidKeyword {
        location: String,
        keyword: &'static str,
        expected: &'static str,
    },
    #[error("{location}: pattern {pattern:?} is not a supported regular expression: {reason}")]
    InvalidPattern {
        location: String,
        pattern: String,
        reason: String,
    },
    #[error("{location}: required field {name:?} is not declared in properties")]
    UndeclaredRequired { location: String, name: String },
    #[error("{location}: enum value {value} does not fit the field: {reason}")]
    InvalidEnumValue {
        location: String,
        value: String,
        reason: String,
    },
    #[error("{location}: default {value} does not satisfy the field: {reason}")]
    InvalidDefault {
        location: String,
        value: String,
        reason: String,
    },
    #[error("{location}: the schema root must be an object")]
    RootNotObject { location: String },
    #[error("{location}: the schema nests deeper than {limit} levels")]
    TooDeep { location: String, limit: usize },
}

impl HasKind for SchemaError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
}

/// One reason a row is rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The row-error code class (spec §7.4).
    pub code: ViolationCode,
    /// The JSON Schema keyword that failed (`type`, `required`, `enum`, `pattern`, …).
    pub keyword: &'static str,
    /// The JSON pointer of the offending value in the row (`""` for the row itself).
    pub pointer: String,
    /// The location of the field in the schema (`#/properties/_acme/properties/points`).
    pub schema_location: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pointer = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(f, "{} {}: {}", self.code.code(), pointer, self.message)
    }
}

/// The row-error codes of spec §7.4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViolationCode {
    /// The row is not a JSON object or has too many fields.
    Parse,
    /// A required field is absent or null.
    Required,
    /// A value cannot be converted to its field's type, or the field is not in the schema.
    Conversion,
    /// A value is not one of the field's `enum` values.
    Enum,
    /// A `pattern`, `minLength`/`maxLength`, `minItems`/`maxItems` or `uniqueItems` failure.
    PatternOrLength,
    /// A number outside `minimum`/`maximum` (explicit, exclusive or implied by the width).
    Range,
    /// A string that does not have its declared `format`.
    Format,
}

impl ViolationCode {
    /// Returns the code as it appears in batch `errors` and diagnostics.
    pub fn code(self) -> &'static str {
        match self {
            Self::Parse => "INGEST-1401-400",
            Self::Required => "INGEST-1555-400",
            Self::Conversion => "INGEST-9101-400",
            Self::Enum => "INGEST-9102-400",
            Self::PatternOrLength => "INGEST-9103-400",
            Self::Range => "INGEST-9104-400",
            Self::Format => "INGEST-9105-400",
        }
    }

    /// Returns the one-sentence description used in a batch's `errors` entries.
    pub fn description(self) -> &'static str {
        match self {
            Self::Parse => "The row could not be parsed.",
            Self::Required => "A required field is absent or null.",
            Self::Conversion => "A value could not be converted to the type of its field.",
            Self::Enum => "A value is not one of the values its field allows.",
            Self::PatternOrLength => {
                "A value does not match the pattern or length its field requires."
            }
            Self::Range => "A number is outside the range its field allows.",
            Self::Format => "A value does not have the format its field requires.",
        }
    }
}

/// Checks a `pattern` keyword the way [`Validator::compile`] will compile it: an ECMA-262
/// regular expression without look-around or back-references.
///
/// # Errors
/// The regex engine's one-line reason.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    pattern::Pattern::compile(pattern).map(drop)
}

impl Validator {
    /// Compiles a resolved XDM schema with the default options.
    ///
    /// # Errors
    ///
    /// [`SchemaError`] when the schema has a leftover `$ref`, an unknown or inconsistent
    /// type, an invalid regex, a bound that is not a number, an enum value or default that
    /// does not fit its field, or a root that is not an object.
    pub fn compile(schema: &Value) -> Result<Self, SchemaError> {
        Self::compile_with(schema, ValidatorOptions::default())
    }

    /// Compiles a resolved XDM schema with the given options.
    ///
    /// # Errors
    ///
    /// As [`Validator::compile`].
    pub fn compile_with(schema: &Value, options: ValidatorOptions) -> Result<Self, SchemaError> {
        let root = compile::compile_root(schema)?;
        Ok(Self { root, options })
    }

    /// Returns the root object of the compiled schema, for decoders that convert values
    /// straight into columns (see [`plan`]).
    pub fn root(&self) -> plan::ObjectFields<'_> {
        plan::ObjectFields::new(self.root.as_object())
    }

    /// Returns the options the validator was compiled with.
    pub fn options(&self) -> &ValidatorOptions {
        &self.options
    }

    /// Converts and validates one row read from `source`.
    ///
    /// # Errors
    ///
    /// Every violation of the row, in row order (an object's missing required fields after
    /// its properties). A row that is not an object or has too many fields reports that one
    /// parsing violation only.
    pub fn validate(&self, mut row: Value, source: Source) -> Result<Value, Vec<Violation>> {
        let Value::Object(fields) = &mut row else {
            return Err(vec![Violation {
                code: ViolationCode::Parse,
                keyword: "type",
                pointer: String::new(),
                schema_location: self.root.location.to_string(),
                message: format!(
                    "the row is {}, expected a JSON object",
                    walk::describe(&row)
                ),
            }]);
        };
        let mut walk = Walk::new(
            source,
            self.options.unknown_fields,
            self.options.max_fields_per_row,
        );
        walk.visit_object(&self.root, self.root.as_object(), fields);
        if walk.fields_seen() > self.options.max_fields_per_row {
            return Err(vec![Violation {
                code: ViolationCode::Parse,
                keyword: "maxFields",
                pointer: String::new(),
                schema_location: self.root.location.to_string(),
                message: format!(
                    "the row has more than {} fields (object properties, map entries and array items)",
                    self.options.max_fields_per_row
                ),
            }]);
        }
        match walk.into_violations() {
            violations if violations.is_empty() => Ok(row),
            violations => Err(violations),
        }
    }
}
