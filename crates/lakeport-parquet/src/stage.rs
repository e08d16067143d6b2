//! The decoding stage of JSON Lines on its own — parse, validate, convert and build Arrow
//! columns — for `cargo bench -p lakeport-parquet --bench decode`. Not part of the crate's
//! API: the batch pipeline is [`BatchProcessor`](crate::BatchProcessor).

use std::sync::Arc;

use arrow_array::RecordBatch;
use lakeport_domain::xdm::validate::{Source, Validator};
use serde_json::Value;

use crate::direct::{Offered, RowBuilder};
use crate::output::RowEncoder;
use crate::schema::arrow_schema;

/// Which engine a [`DecodeStage`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageEngine {
    /// Tape, one walk, columns (what batches use).
    Columns,
    /// `Value`, validator, arrow-json (the previous path, on one thread here).
    Rows,
}

/// Decodes JSON Lines rows of one schema into record batches.
pub struct DecodeStage {
    validator: Validator,
    engine: StageEngine,
    builder: RowBuilder,
    encoder: RowEncoder,
    rejected: u64,
}

impl DecodeStage {
    /// Compiles the schema.
    ///
    /// # Errors
    /// A message when the schema cannot be compiled or mapped.
    pub fn new(schema: &Value, engine: StageEngine, chunk_rows: usize) -> Result<Self, String> {
        let validator = Validator::compile(schema).map_err(|err| err.to_string())?;
        let arrow = Arc::new(arrow_schema(schema).map_err(|err| err.to_string())?);
        Ok(Self {
            builder: RowBuilder::new(&validator, arrow.clone())?,
            encoder: RowEncoder::new(arrow, chunk_rows).map_err(|err| err.to_string())?,
            validator,
            engine,
            rejected: 0,
        })
    }

    /// Decodes one line (a row); a rejected row is counted, not written anywhere.
    pub fn push_line(&mut self, line: &[u8]) {
        if self.engine == StageEngine::Columns
            && matches!(
                self.builder.json_row(&self.validator, line),
                Ok(Offered::Accepted)
            )
        {
            return;
        }
        let accepted = serde_json::from_slice::<Value>(line)
            .ok()
            .and_then(|row| self.validator.validate(row, Source::Json).ok());
        match (accepted, self.engine) {
            (Some(converted), StageEngine::Columns) => self
                .builder
                .converted_row(&self.validator, &converted)
                .expect("a validated row fits the columns"),
            (Some(converted), StageEngine::Rows) => self
                .encoder
                .push(&converted)
                .expect("a validated row encodes"),
            (None, _) => self.rejected += 1,
        }
    }

    /// Returns the rows decoded since the last call as one record batch.
    pub fn flush(&mut self) -> Option<RecordBatch> {
        match self.engine {
            StageEngine::Columns if self.builder.rows() > 0 => Some(
                self.builder
                    .finish()
                    .expect("the columns make a record batch"),
            ),
            StageEngine::Columns => None,
            StageEngine::Rows => self.encoder.flush().expect("the rows make a record batch"),
        }
    }

    /// Returns how many rows were rejected.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }
}
