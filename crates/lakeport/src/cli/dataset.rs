//! `lakeport dataset create|list|show|read|optimize|vacuum`: Catalog datasets, their rows
//! and the maintenance of their Delta tables.

use anyhow::Context as _;
use clap::Subcommand;
use lakeport_client::Dataset;
use serde_json::{Value, json};

use super::Context;
use super::output::{Table, timestamp};
use super::transfer::Bars;

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Creates a dataset and prints its id.
    Create {
        /// Dataset name.
        #[arg(long)]
        name: String,
        /// The schema's $id or meta:altId (rows are validated against it).
        #[arg(long)]
        schema: Option<String>,
        /// Dataset description.
        #[arg(long)]
        description: Option<String>,
        /// Keeps diagnostics (rejected rows and their errors) for every batch.
        #[arg(long)]
        diagnostics: bool,
    },
    /// Lists datasets, newest first.
    List {
        /// Most datasets to list (1–100).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Only datasets with this name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Shows a dataset and its latest batches.
    Show {
        /// Dataset id.
        id: String,
    },
    /// Reads a dataset's rows, now or as they were after a batch or at a version of its
    /// Delta table: up to 100 rows printed as JSON Lines (Data Access preview), or with
    /// --output every row, as one JSON Lines file or as the table's Parquet files.
    Read {
        /// Dataset id.
        id: String,
        /// Reads the table as the commit of this (successful) batch left it.
        #[arg(long, conflicts_with = "version")]
        as_of_batch: Option<String>,
        /// Reads the table at this Delta version.
        #[arg(long)]
        version: Option<u64>,
        /// Writes every row: to a JSON Lines file when the path ends in .jsonl or .json,
        /// else into this directory as the table's Parquet files (kept as they are).
        #[arg(long, value_name = "PATH")]
        output: Option<std::path::PathBuf>,
    },
    /// Compacts the small files of a dataset's Delta table (a job on the server; safe
    /// while ingestion continues) and waits for it.
    Optimize(MaintainArgs),
    /// Deletes the compacted files that no table version within the server's retention
    /// period (`ingest.vacuum_retention_secs`) reads, and waits for it.
    Vacuum(MaintainArgs),
}

#[derive(Debug, clap::Args)]
pub struct MaintainArgs {
    /// Dataset id.
    id: String,
    /// Queues the job and prints it without waiting.
    #[arg(long)]
    no_wait: bool,
    /// Gives up waiting after this many seconds (the job goes on).
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    timeout: u64,
}

pub fn run(ctx: &Context, command: &DatasetCommand) -> anyhow::Result<()> {
    match command {
        DatasetCommand::Create {
            name,
            schema,
            description,
            diagnostics,
        } => create(
            ctx,
            name,
            schema.as_deref(),
            description.as_deref(),
            *diagnostics,
        ),
        DatasetCommand::List { limit, name } => list(ctx, *limit, name.as_deref()),
        DatasetCommand::Show { id } => show(ctx, id),
        DatasetCommand::Read {
            id,
            as_of_batch,
            version,
            output,
        } => match output {
            Some(output) => export(ctx, id, as_of_batch.as_deref(), *version, output),
            None => read(ctx, id, as_of_batch.as_deref(), *version),
        },
        DatasetCommand::Optimize(args) => maintain(ctx, "optimize", args),
        DatasetCommand::Vacuum(args) => maintain(ctx, "vacuum", args),
    }
}

/// Queues a table job and follows it to its end, printing each change of its status.
fn maintain(ctx: &Context, operation: &str, args: &MaintainArgs) -> anyhow::Result<()> {
    let id = args.id.as_str();
    let mut job = ctx
        .client
        .queue_table_job(id, operation)
        .with_context(|| format!("queuing {operation} of dataset {id}"))?;
    let job_id = job["id"].as_str().unwrap_or_default().to_owned();
    let started = std::time::Instant::now();
    let mut shown = String::new();
    loop {
        let status = job["status"].as_str().unwrap_or_default().to_owned();
        if status != shown && !ctx.out.json {
            eprintln!("{operation} job {job_id} of dataset {id}: {status}");
            shown = status.clone();
        }
        if args.no_wait || status == "done" || status == "failed" {
            break;
        }
        if started.elapsed().as_secs() >= args.timeout {
            anyhow::bail!(
                "{operation} job {job_id} is still {status} after {} s; follow it with `lakeport dataset {operation} {id}` again (it returns the pending job)",
                args.timeout
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
        job = ctx
            .client
            .table_job(id, &job_id)
            .with_context(|| format!("reading {operation} job {job_id} of dataset {id}"))?;
    }
    if ctx.out.json {
        return ctx.out.print_json(&job);
    }
    if job["status"] == "failed" {
        anyhow::bail!(
            "{operation} job {job_id} of dataset {id} failed: {}",
            job["error"].as_str().unwrap_or("no reason recorded")
        );
    }
    if let Some(result) = job["result"].as_object() {
        for (name, value) in result {
            ctx.out.line(format!("{name}: {value}"));
        }
    }
    Ok(())
}

fn create(
    ctx: &Context,
    name: &str,
    schema: Option<&str>,
    description: Option<&str>,
    diagnostics: bool,
) -> anyhow::Result<()> {
    let mut document = json!({"name": name});
    if let Some(schema) = schema {
        // schemaRef.id must be the $id; look an altId (or anything else) up first.
        let schema_id = if schema.starts_with("https://") {
            schema.to_owned()
        } else {
            let found = ctx
                .client
                .schema(schema)
                .with_context(|| format!("looking up schema {schema}"))?;
            found["$id"].as_str().unwrap_or(schema).to_owned()
        };
        document["schemaRef"] = json!({
            "id": schema_id,
            "contentType": "application/vnd.adobe.xed+json;version=1",
        });
    }
    if let Some(description) = description {
        document["description"] = json!(description);
    }
    if diagnostics {
        document["enableErrorDiagnostics"] = json!(true);
    }
    let id = ctx
        .client
        .create_dataset(&document)
        .with_context(|| format!("creating dataset {name:?}"))?;
    if ctx.out.json {
        let dataset = ctx.client.dataset(&id).context("reading the new dataset")?;
        return ctx.out.print_json(&dataset_json(&dataset));
    }
    ctx.out.line(id);
    Ok(())
}

fn dataset_json(dataset: &Dataset) -> Value {
    let mut doc = dataset.doc.clone();
    doc.entry("id").or_insert_with(|| json!(dataset.id));
    Value::Object(doc)
}

fn list(ctx: &Context, limit: u32, name: Option<&str>) -> anyhow::Result<()> {
    let limit = limit.to_string();
    let mut query = vec![("orderBy", "desc:created"), ("limit", limit.as_str())];
    if let Some(name) = name {
        query.push(("name", name));
    }
    let datasets = ctx
        .client
        .list_datasets(&query)
        .context("listing datasets")?;
    if ctx.out.json {
        return ctx
            .out
            .print_json(&Value::Array(datasets.iter().map(dataset_json).collect()));
    }
    let mut table = Table::new(&["ID", "NAME", "CREATED", "LAST BATCH", "SCHEMA"]);
    for dataset in &datasets {
        let last = dataset
            .last_batch()
            .map(|(id, status)| {
                let plain = format!("{id} {status}");
                let painted = format!("{id} {}", ctx.out.status(status));
                (plain, painted)
            })
            .unwrap_or_else(|| ("-".to_owned(), "-".to_owned()));
        let plain = |text: String| (text.clone(), text);
        table.painted_row(vec![
            plain(dataset.id.clone()),
            plain(dataset.name().unwrap_or_default().to_owned()),
            plain(timestamp(dataset.created())),
            last,
            plain(dataset.schema_id().unwrap_or("-").to_owned()),
        ]);
    }
    table.print(&ctx.out, "no datasets");
    Ok(())
}

fn show(ctx: &Context, id: &str) -> anyhow::Result<()> {
    let dataset = ctx
        .client
        .dataset(id)
        .with_context(|| format!("reading dataset {id}"))?;
    let batches = ctx
        .client
        .list_batches(&[
            ("dataSet", id),
            ("orderBy", "desc:created"),
            ("limit", "10"),
        ])
        .with_context(|| format!("listing the batches of dataset {id}"))?;
    if ctx.out.json {
        let mut doc = dataset_json(&dataset);
        doc["batches"] = Value::Array(batches.iter().map(super::batch::batch_json).collect());
        return ctx.out.print_json(&doc);
    }
    let out = &ctx.out;
    out.line(format!("{} {}", out.bold("dataset"), dataset.id));
    let field = |label: &str, value: String| out.line(format!("  {label:<12} {value}"));
    field("name", dataset.name().unwrap_or("-").to_owned());
    if let Some(description) = dataset.doc.get("description").and_then(Value::as_str) {
        field("description", description.to_owned());
    }
    field("schema", dataset.schema_id().unwrap_or("-").to_owned());
    field("created", timestamp(dataset.created()));
    if let Some(location) = dataset.doc.get("basePath").and_then(Value::as_str) {
        // The dataset's Delta table (spec §12), which other engines read directly.
        let version = match dataset.doc.get("tableVersion").and_then(Value::as_u64) {
            Some(version) => format!("Delta, version {version}"),
            None => "Delta, no batch yet".to_owned(),
        };
        field("table", format!("{location} ({version})"));
    }
    if let Some(diagnostics) = dataset.doc.get("enableErrorDiagnostics") {
        field("diagnostics", diagnostics.to_string());
    }
    out.line("");
    super::batch::print_batch_table(out, &batches, "no batches yet");
    Ok(())
}

/// Writes every row of the dataset's table as of the given point: its live Parquet files
/// downloaded into a directory, or their rows as one JSON Lines file.
fn export(
    ctx: &Context,
    id: &str,
    as_of_batch: Option<&str>,
    version: Option<u64>,
    output: &std::path::Path,
) -> anyhow::Result<()> {
    let query = as_of_query(as_of_batch, version);
    let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let listing = ctx
        .client
        .table_files(id, &pairs)
        .with_context(|| format!("listing the table files of dataset {id}"))?;
    let read_version = listing["version"].as_u64().unwrap_or_default();
    let mut files: Vec<(String, String, u64)> = Vec::new();
    let mut page = listing;
    loop {
        files.extend(
            page["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|file| {
                    Some((
                        file["name"].as_str()?.to_owned(),
                        file["_links"]["self"]["href"].as_str()?.to_owned(),
                        file["length"].as_u64().unwrap_or_default(),
                    ))
                }),
        );
        let Some(next) = page["_links"]["next"]["href"].as_str() else {
            break;
        };
        page = ctx
            .client
            .follow(next)
            .with_context(|| format!("listing the table files of dataset {id}"))?;
    }
    let json_lines = output
        .extension()
        .is_some_and(|extension| extension == "jsonl" || extension == "json");
    let total: u64 = files.iter().map(|(_, _, length)| length).sum();
    let bars = Bars::new(&ctx.out, total, files.len());
    let (rows, bytes) = if json_lines {
        write_json_lines(ctx, &bars, &files, output)?
    } else {
        std::fs::create_dir_all(output)
            .with_context(|| format!("creating {}", output.display()))?;
        let mut bytes = 0;
        for (name, href, length) in &files {
            let dest = output.join(name);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            let progress = bars.file(name, *length);
            let result = ctx.client.download_href(href, &dest, &progress);
            bars.finish_file(progress, &format!("downloaded {name}"));
            bytes += result.with_context(|| format!("downloading {name}"))?;
        }
        (None, bytes)
    };
    bars.finish();
    let summary = json!({
        "dataSetId": id,
        "version": read_version,
        "files": files.len(),
        "bytes": bytes,
        "rows": rows,
        "output": output.display().to_string(),
    });
    if ctx.out.json {
        return ctx.out.print_json(&summary);
    }
    match rows {
        Some(rows) => ctx.out.line(format!(
            "wrote {rows} rows of dataset {id} (table version {read_version}) to {}",
            output.display()
        )),
        None => ctx.out.line(format!(
            "wrote {} Parquet file(s) of dataset {id} (table version {read_version}) into {}",
            files.len(),
            output.display()
        )),
    }
    Ok(())
}

/// Downloads each file to a scratch copy and appends its rows to `output` (through a
/// temporary file renamed once complete); returns the rows and the bytes downloaded.
fn write_json_lines(
    ctx: &Context,
    bars: &Bars,
    files: &[(String, String, u64)],
    output: &std::path::Path,
) -> anyhow::Result<(Option<u64>, u64)> {
    use std::io::Write as _;
    let directory = output
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(directory)
        .with_context(|| format!("creating {}", directory.display()))?;
    let scratch = Scratch(directory.join(format!(
        ".lakeport-read-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default()
    )));
    std::fs::create_dir(scratch.path())
        .with_context(|| format!("creating {}", scratch.path().display()))?;
    let partial = scratch.path().join("rows.jsonl");
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&partial)
            .with_context(|| format!("creating {}", partial.display()))?,
    );
    let (mut rows, mut bytes) = (0, 0);
    for (name, href, length) in files {
        let local = scratch.path().join("part.parquet");
        let progress = bars.file(name, *length);
        let result = ctx.client.download_href(href, &local, &progress);
        bars.finish_file(progress, &format!("read {name}"));
        bytes += result.with_context(|| format!("downloading {name}"))?;
        rows += lakeport_parquet::parquet_json_lines(name, &local, &mut out)
            .with_context(|| format!("reading {name}"))?;
    }
    out.flush()
        .with_context(|| format!("writing {}", partial.display()))?;
    drop(out);
    std::fs::rename(&partial, output).with_context(|| format!("writing {}", output.display()))?;
    Ok((Some(rows), bytes))
}

/// The query parameters that read a dataset's table as of a batch or a version.
fn as_of_query(as_of_batch: Option<&str>, version: Option<u64>) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    if let Some(batch) = as_of_batch {
        query.push(("asOfBatch", batch.to_owned()));
    }
    if let Some(version) = version {
        query.push(("version", version.to_string()));
    }
    query
}

/// A scratch directory removed, with what is in it, when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read(
    ctx: &Context,
    id: &str,
    as_of_batch: Option<&str>,
    version: Option<u64>,
) -> anyhow::Result<()> {
    let query = as_of_query(as_of_batch, version);
    let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let answer = ctx
        .client
        .preview_dataset(id, &pairs)
        .with_context(|| format!("reading the rows of dataset {id}"))?;
    if ctx.out.json {
        return ctx.out.print_json(&answer);
    }
    for row in answer["data"].as_array().into_iter().flatten() {
        ctx.out.line(row.to_string());
    }
    Ok(())
}
