//! The decoding stage of JSON Lines on its own — parse, validate, convert and build Arrow
//! columns — for `cargo bench -p lakeport-parquet --bench decode`. Not part of the crate's
//! API: the batch pipeline is [`BatchProcessor`](crate::BatchProcessor).

use std::sync::Arc;

use arrow_array::RecordBatch;
use lakeport_domain::xdm::validate::{Source, Validator};
use serde_json::Value;

use crate::direct::{Offered, RowBuilder};
use crate::schema::arrow_schema;

/// Decodes JSON Lines rows of one schema into record batches, as batches do: a token tape,
/// one walk against the compiled validator, Arrow columns; a row the walk does not accept
/// goes the validator's `Value` way.
pub struct DecodeStage {
    validator: Validator,
    builder: RowBuilder,
    rejected: u64,
}

impl DecodeStage {
    /// Compiles the schema.
    ///
    /// # Errors
    /// A message when the schema cannot be compiled or mapped.
    pub fn new(schema: &Value) -> Result<Self, String> {
        let validator = Validator::compile(schema).map_err(|err| err.to_string())?;
        let arrow = Arc::new(arrow_schema(schema).map_err(|err| err.to_string())?);
        Ok(Self {
            builder: RowBuilder::new(&validator, arrow)?,
            validator,
            rejected: 0,
        })
    }

    /// Decodes one line (a row); a rejected row is counted, not written anywhere.
    pub fn push_line(&mut self, line: &[u8]) {
        if matches!(
            self.builder.json_row(&self.validator, line),
            Ok(Offered::Accepted)
        ) {
            return;
        }
        let accepted = serde_json::from_slice::<Value>(line)
            .ok()
            .and_then(|row| self.validator.validate(row, Source::Json).ok());
        match accepted {
            Some(converted) => self
                .builder
                .converted_row(&self.validator, &converted)
                .expect("a validated row fits the columns"),
            None => self.rejected += 1,
        }
    }

    /// Returns the rows decoded since the last call as one record batch.
    pub fn flush(&mut self) -> Option<RecordBatch> {
        (self.builder.rows() > 0).then(|| {
            self.builder
                .finish()
                .expect("the columns make a record batch")
        })
    }

    /// Returns how many rows were rejected.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }
}
