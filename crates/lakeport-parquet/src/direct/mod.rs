//! Decoding straight into Arrow columns (issue 16): a JSON row is parsed onto a reused token
//! tape, walked against the compiled validator and appended to column builders of the
//! dataset's Arrow schema; no `serde_json::Value` is built for a row that passes. A row the
//! walker does not accept is rolled back and decided by the row validator, which writes the
//! same diagnostics as ever; rows decoded by other readers (CSV, Parquet, JSON arrays) reach
//! the same columns once validated.

mod batch;
mod columns;
mod csv;
mod scan;
mod tape;
mod walk;

#[cfg(test)]
mod tests;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};
use lakeport_domain::xdm::validate::{Source, Validator};
use serde_json::Value;

pub(crate) use batch::{Checked, check_batch};
use columns::RowColumns;
pub(crate) use csv::{CsvChunk, CsvColumns};
pub(crate) use tape::Tape;
use walk::Walker;

/// What became of a JSON row offered to [`RowBuilder::json_row`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offered {
    /// The row passed and is in the columns.
    Accepted,
    /// The columns are as before; the row validator must decide the row.
    Undecided,
}

/// The columns of the rows validated so far, and the reused state of the walk.
pub(crate) struct RowBuilder {
    columns: RowColumns,
    walker: Walker,
    tape: Tape,
}

impl RowBuilder {
    /// Builds empty columns of `schema` (the mapping of the schema `validator` compiled).
    ///
    /// # Errors
    /// A message when the two do not describe the same fields.
    pub(crate) fn new(validator: &Validator, schema: SchemaRef) -> Result<Self, String> {
        let options = validator.options();
        Ok(Self {
            columns: RowColumns::new(validator, schema)?,
            walker: Walker::new(
                Source::Json,
                options.unknown_fields,
                options.max_fields_per_row,
            ),
            tape: Tape::default(),
        })
    }

    /// Parses one JSON row and appends it when it passes.
    ///
    /// # Errors
    /// serde_json's error when the text is not one JSON value.
    pub(crate) fn json_row(
        &mut self,
        validator: &Validator,
        text: &[u8],
    ) -> Result<Offered, serde_json::Error> {
        self.tape.parse(text)?;
        let rows = self.columns.rows();
        match self
            .walker
            .row(validator.root(), &mut self.columns.root, &self.tape)
        {
            Ok(()) => Ok(Offered::Accepted),
            Err(walk::Bail) => {
                self.columns.truncate(rows);
                Ok(Offered::Undecided)
            }
        }
    }

    /// Appends a row the validator accepted and converted.
    ///
    /// # Errors
    /// A message when the converted row does not fit the columns (a bug).
    pub(crate) fn converted_row(
        &mut self,
        validator: &Validator,
        converted: &Value,
    ) -> Result<(), String> {
        self.tape.set_value(converted);
        let rows = self.columns.rows();
        match self
            .walker
            .converted_row(validator.root(), &mut self.columns.root, &self.tape)
        {
            Ok(()) => Ok(()),
            Err(walk::Bail) => {
                self.columns.truncate(rows);
                Err(format!(
                    "a validated row does not fit the Arrow columns: {converted}"
                ))
            }
        }
    }

    /// Returns how many rows the columns hold.
    pub(crate) fn rows(&self) -> usize {
        self.columns.rows()
    }

    /// Returns the rows as one record batch and empties the columns.
    ///
    /// # Errors
    /// Arrow's error when an array cannot be built.
    pub(crate) fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.columns.finish()
    }
}
