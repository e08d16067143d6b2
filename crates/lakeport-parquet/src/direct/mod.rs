//! Decoding straight into Arrow columns (issue 16): a JSON row is read once from its text,
//! walked against the compiled validator as it is read, and appended to column builders of
//! the dataset's Arrow schema; no `serde_json::Value` is built for a row that passes. A row
//! that walk is not sure of (an escape in a string, a syntax error, a violation) is parsed
//! onto a reused token tape and walked there; a row that walk does not accept either is
//! rolled back and decided by the row validator, which writes the same diagnostics as ever.
//! Rows decoded by other readers (CSV, Parquet, JSON arrays) reach the same columns once
//! validated.
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
    /// Scratch space for the values of unknown properties read from a row's text.
    skipped: Tape,
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
            skipped: Tape::default(),
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
        let rows = self.columns.rows();
        // Most rows are read once, straight from their text; the others are parsed onto
        // the tape and walked there. The text's UTF-8 is checked with SIMD (the standard
        // library's check took 1.8% of the instructions of a JSON Lines batch).
        if let Ok(text) = simdutf8::basic::from_utf8(text) {
            match self.walker.text_row(
                validator.root(),
                &mut self.columns.root,
                text,
                &mut self.skipped,
            ) {
                Ok(()) => return Ok(Offered::Accepted),
                Err(walk::Bail) => {
                    self.columns.truncate(rows);
                    // A value or rule refused: the tape walk would refuse it too.
                    if self.walker.refused {
                        return Ok(Offered::Undecided);
                    }
                }
            }
        }
        self.tape.parse(text)?;
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

    /// Offers a row to the walk from its text only; `true` when it was appended.
    #[cfg(test)]
    fn text_row_only(&mut self, validator: &Validator, text: &str) -> bool {
        let rows = self.columns.rows();
        let walked = self.walker.text_row(
            validator.root(),
            &mut self.columns.root,
            text,
            &mut self.skipped,
        );
        if walked.is_err() {
            self.columns.truncate(rows);
        }
        walked.is_ok()
    }

    /// Offers a row to the tape walk only; `true` when it was appended.
    #[cfg(test)]
    fn tape_row_only(&mut self, validator: &Validator, text: &[u8]) -> bool {
        let rows = self.columns.rows();
        if self.tape.parse(text).is_err() {
            return false;
        }
        let walked = self
            .walker
            .row(validator.root(), &mut self.columns.root, &self.tape);
        if walked.is_err() {
            self.columns.truncate(rows);
        }
        walked.is_ok()
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
