//! `lakeport batch list|show|abort|revert|errors`, and the batch summary that
//! `lakeport ingest --wait` prints too.

use anyhow::Context as _;
use clap::Subcommand;
use lakeport_client::{Batch, BatchAction, Client, FileEntry};
use serde_json::{Value, json};

use super::Context;
use super::output::{Output, Table, count, timestamp, truncate};

#[derive(Debug, Subcommand)]
pub enum BatchCommand {
    /// Lists batches, newest first.
    List {
        /// Only batches of this dataset.
        #[arg(long)]
        dataset: Option<String>,
        /// Only batches in these states (comma list, e.g. failed,aborted).
        #[arg(long)]
        status: Option<String>,
        /// Most batches to list (1–100).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Shows a batch: status, row counts and errors.
    Show {
        /// Batch id.
        id: String,
    },
    /// Aborts a batch that is still loading or processing.
    Abort {
        /// Batch id.
        id: String,
    },
    /// Reverts a successful batch: its data stops being served.
    Revert {
        /// Batch id.
        id: String,
    },
    /// Shows a batch's errors and its first rejected rows.
    Errors {
        /// Batch id.
        id: String,
        /// Most rejected rows to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

pub fn run(ctx: &Context, command: &BatchCommand) -> anyhow::Result<()> {
    match command {
        BatchCommand::List {
            dataset,
            status,
            limit,
        } => {
            let limit = limit.to_string();
            let mut query = vec![("orderBy", "desc:created"), ("limit", limit.as_str())];
            if let Some(dataset) = dataset {
                query.push(("dataSet", dataset));
            }
            if let Some(status) = status {
                query.push(("status", status));
            }
            let batches = ctx.client.list_batches(&query).context("listing batches")?;
            if ctx.out.json {
                return ctx
                    .out
                    .print_json(&Value::Array(batches.iter().map(batch_json).collect()));
            }
            print_batch_table(&ctx.out, &batches, "no batches");
            Ok(())
        }
        BatchCommand::Show { id } => {
            let batch = read(&ctx.client, id)?;
            if ctx.out.json {
                return ctx.out.print_json(&batch_json(&batch));
            }
            print_summary(&ctx.out, &batch, None);
            Ok(())
        }
        BatchCommand::Abort { id } => signal(ctx, id, BatchAction::Abort),
        BatchCommand::Revert { id } => signal(ctx, id, BatchAction::Revert),
        BatchCommand::Errors { id, limit } => {
            let batch = read(&ctx.client, id)?;
            let rejected = rejected_rows(&ctx.client, &batch, *limit);
            if ctx.out.json {
                return ctx.out.print_json(&json!({
                    "id": batch.id,
                    "status": batch.status.as_str(),
                    "errors": batch.doc.get("errors").cloned().unwrap_or(json!([])),
                    "rejectedRows": rejected,
                }));
            }
            print_errors(&ctx.out, &batch);
            match &rejected {
                Some(rows) => print_rejected(&ctx.out, rows),
                None => ctx
                    .out
                    .line("  (this server offers no rejected rows for the batch)"),
            }
            Ok(())
        }
    }
}

fn read(client: &Client, id: &str) -> anyhow::Result<Batch> {
    client
        .batch(id)
        .with_context(|| format!("reading batch {id}"))
}

fn signal(ctx: &Context, id: &str, action: BatchAction) -> anyhow::Result<()> {
    ctx.client
        .signal_batch(id, action)
        .with_context(|| format!("sending {} to batch {id}", action.as_str()))?;
    let batch = read(&ctx.client, id)?;
    if ctx.out.json {
        return ctx.out.print_json(&batch_json(&batch));
    }
    ctx.out.line(format!(
        "batch {} is {}",
        batch.id,
        ctx.out.status(batch.status.as_str())
    ));
    Ok(())
}

/// Returns a batch document with its id, for `--json`.
pub fn batch_json(batch: &Batch) -> Value {
    let mut doc = batch.doc.clone();
    doc.entry("id").or_insert_with(|| json!(batch.id));
    Value::Object(doc)
}

/// Prints batches as a table.
pub fn print_batch_table(out: &Output, batches: &[Batch], empty: &str) {
    let mut table = Table::new(&[
        "ID", "STATUS", "DATASET", "FORMAT", "CREATED", "ROWS", "REJECTED",
    ]);
    for batch in batches {
        let plain = |text: String| (text.clone(), text);
        table.painted_row(vec![
            plain(batch.id.clone()),
            (batch.status.to_string(), out.status(batch.status.as_str())),
            plain(batch.dataset_id().unwrap_or("-").to_owned()),
            plain(batch.format().unwrap_or("-").to_owned()),
            plain(timestamp(batch.created())),
            plain(count(batch.rows_ingested())),
            plain(count(batch.rows_rejected())),
        ]);
    }
    table.print(out, empty);
}

/// Returns up to `limit` rejected rows from the Data Access `failed` files, or `None` when
/// the server offers none for this batch (no such endpoint, or no diagnostics kept).
pub fn rejected_rows(client: &Client, batch: &Batch, limit: usize) -> Option<Vec<Value>> {
    if limit == 0 {
        return None;
    }
    let files = match client.failed_files(&batch.id) {
        Ok(files) => files,
        Err(err) => {
            if !err.is_not_found() {
                eprintln!(
                    "note: cannot list the rejected rows of batch {}: {err}",
                    batch.id
                );
            }
            return None;
        }
    };
    let mut rows = Vec::new();
    for file in files {
        let FileEntry::File { name, .. } = file else {
            continue;
        };
        if rows.len() >= limit {
            break;
        }
        match client.failed_rows(&batch.id, &name, limit - rows.len()) {
            Ok(more) => rows.extend(more),
            Err(err) => {
                eprintln!("note: cannot read the rejected rows in {name}: {err}");
                break;
            }
        }
    }
    Some(rows)
}

/// Returns the summary of a finished batch for `--json`.
pub fn summary_json(batch: &Batch, rejected: Option<&[Value]>) -> Value {
    json!({
        "id": batch.id,
        "status": batch.status.as_str(),
        "dataset": batch.dataset_id(),
        "format": batch.format(),
        "rowsRead": batch.rows_read(),
        "rowsIngested": batch.rows_ingested(),
        "rowsRejected": batch.rows_rejected(),
        "errors": batch.doc.get("errors").cloned().unwrap_or(json!([])),
        "rejectedRows": rejected,
    })
}

/// Prints a batch: status, counts, errors and, when given, rejected rows.
pub fn print_summary(out: &Output, batch: &Batch, rejected: Option<&[Value]>) {
    out.line(format!(
        "{} {}  {}",
        out.bold("batch"),
        batch.id,
        out.status(batch.status.as_str())
    ));
    let field = |label: &str, value: String| out.line(format!("  {label:<10} {value}"));
    field("dataset", batch.dataset_id().unwrap_or("-").to_owned());
    field("format", batch.format().unwrap_or("-").to_owned());
    field("created", timestamp(batch.created()));
    if batch.status.is_settled() {
        field("rows read", count(batch.rows_read()));
        field("ingested", count(batch.rows_ingested()));
        field("rejected", count(batch.rows_rejected()));
    }
    print_errors(out, batch);
    if let Some(rows) = rejected {
        print_rejected(out, rows);
    }
}

fn print_errors(out: &Output, batch: &Batch) {
    let errors = batch.errors();
    if errors.is_empty() {
        return;
    }
    out.line("  errors");
    for error in errors {
        let rows = match error.record_count {
            Some(1) => " (1 row)".to_owned(),
            Some(n) => format!(" ({n} rows)"),
            None => String::new(),
        };
        out.line(format!(
            "    {}  {}{rows}",
            error.code,
            error.description.trim()
        ));
    }
}

fn print_rejected(out: &Output, rows: &[Value]) {
    if rows.is_empty() {
        return;
    }
    out.line(format!("  first {} rejected rows", rows.len()));
    for row in rows {
        let (file, record, reasons) = describe_rejected(row);
        let prefix = file.map(|file| format!("{file}: ")).unwrap_or_default();
        out.line(format!("    {prefix}{}", truncate(&record, 160)));
        for reason in reasons {
            out.line(format!("      {}", out.dim(&format!("- {reason}"))));
        }
    }
}

/// Splits a rejected row (spec §7.5) into its file, the row as text and its errors.
fn describe_rejected(row: &Value) -> (Option<String>, String, Vec<String>) {
    let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
    let file = text(row.get("_filename"));
    let record = match text(row.get("_corrupt_record")) {
        Some(raw) => raw,
        None => {
            let mut fields = row.as_object().cloned().unwrap_or_default();
            for key in [
                "_errors",
                "_validationErrors",
                "_filename",
                "_corrupt_record",
            ] {
                fields.shift_remove(key);
            }
            Value::Object(fields).to_string()
        }
    };
    let mut reasons = Vec::new();
    for error in row
        .get("_errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let message = text(error.get("message")).unwrap_or_default();
        let code = match error.get("code") {
            Some(Value::String(code)) => format!(" ({code})"),
            Some(code) => format!(" ({code})"),
            None => String::new(),
        };
        match text(error.get("column")) {
            Some(column) => reasons.push(format!("{column}: {message}{code}")),
            None => reasons.push(format!("{message}{code}")),
        }
    }
    for error in row
        .get("_validationErrors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let message = text(error.get("message")).unwrap_or_default();
        match text(error.get("pointerToViolation")) {
            Some(pointer) => reasons.push(format!("{pointer}: {message}")),
            None => reasons.push(message),
        }
    }
    (file, record, reasons)
}
