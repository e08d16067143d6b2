//! `lakeport schema create|list|show`: the Schema Registry subset.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use lakeport_client::Container;
use serde_json::{Value, json};

use super::output::Table;
use super::{Context, Exit};

const PROFILE_CLASS: &str = "https://ns.adobe.com/xdm/context/profile";
const EVENT_CLASS: &str = "https://ns.adobe.com/xdm/context/experienceevent";
/// Replaced in field group files by the organization's tenant id (`GET /stats`).
const TENANT_PLACEHOLDER: &str = "{TENANT_ID}";

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Creates field groups from JSON files, then a schema of a class with them, and
    /// prints the schema's $id.
    Create(CreateArgs),
    /// Lists schemas.
    List {
        /// Lists Adobe's built-in schemas instead of the organization's.
        #[arg(long)]
        global: bool,
    },
    /// Prints a schema with every reference resolved (xed-full).
    Show {
        /// The schema's $id or meta:altId.
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Schema title (unique in the sandbox).
    #[arg(long)]
    title: String,
    /// Schema description.
    #[arg(long)]
    description: Option<String>,
    /// Class: profile, experienceevent, or a class $id.
    #[arg(long)]
    class: String,
    /// A field group JSON file to create ({TENANT_ID} in it is replaced by the tenant id),
    /// or the $id of an existing field group. Repeatable.
    #[arg(long = "field-group", value_name = "FILE|ID")]
    field_groups: Vec<String>,
}

pub fn run(ctx: &Context, command: &SchemaCommand) -> anyhow::Result<()> {
    match command {
        SchemaCommand::Create(args) => create(ctx, args),
        SchemaCommand::List { global } => list(ctx, *global),
        SchemaCommand::Show { id } => {
            let schema = ctx
                .client
                .schema_full(id)
                .with_context(|| format!("reading schema {id}"))?;
            ctx.out.print_json(&schema)
        }
    }
}

fn class_id(class: &str) -> String {
    match class.to_ascii_lowercase().as_str() {
        "profile" => PROFILE_CLASS.to_owned(),
        "experienceevent" | "experience-event" | "event" => EVENT_CLASS.to_owned(),
        _ => class.to_owned(),
    }
}

fn create(ctx: &Context, args: &CreateArgs) -> anyhow::Result<()> {
    let class = class_id(&args.class);
    let mut tenant_id: Option<String> = None;
    let mut field_groups = Vec::new();
    for spec in &args.field_groups {
        let path = std::path::Path::new(spec);
        if !path.is_file() {
            if spec.starts_with("https://") || spec.starts_with('_') {
                field_groups.push(json!({"$id": spec}));
                continue;
            }
            return Err(Exit::usage(format!(
                "--field-group {spec}: no such file (an existing field group is given by its $id)"
            )));
        }
        let mut text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        if text.contains(TENANT_PLACEHOLDER) {
            if tenant_id.is_none() {
                tenant_id = Some(
                    ctx.client
                        .tenant_id()
                        .context("reading the tenant id for {TENANT_ID}")?,
                );
            }
            text = text.replace(TENANT_PLACEHOLDER, tenant_id.as_deref().unwrap_or_default());
        }
        let mut document: Value = serde_json::from_str(&text)
            .map_err(|err| Exit::usage(format!("{}: not JSON: {err}", path.display())))?;
        let Some(object) = document.as_object_mut() else {
            return Err(Exit::usage(format!(
                "{}: a field group must be a JSON object",
                path.display()
            )));
        };
        if !object.contains_key("title") {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            object.insert("title".to_owned(), json!(stem));
        }
        object.entry("type").or_insert_with(|| json!("object"));
        object
            .entry("meta:intendedToExtend")
            .or_insert_with(|| json!([class]));
        let created = ctx
            .client
            .create_field_group(&document)
            .with_context(|| format!("creating the field group from {}", path.display()))?;
        if !ctx.out.json {
            eprintln!(
                "created field group {:?} {}",
                created["title"].as_str().unwrap_or_default(),
                created["$id"].as_str().unwrap_or_default()
            );
        }
        field_groups.push(created);
    }
    let mut all_of = vec![json!({"$ref": class})];
    all_of.extend(
        field_groups
            .iter()
            .map(|group| json!({"$ref": group["$id"]})),
    );
    let mut document = json!({"title": args.title, "type": "object", "allOf": all_of});
    if let Some(description) = &args.description {
        document["description"] = json!(description);
    }
    let schema = ctx
        .client
        .create_schema(&document)
        .with_context(|| format!("creating the schema {:?}", args.title))?;
    if ctx.out.json {
        return ctx
            .out
            .print_json(&json!({"schema": schema, "fieldGroups": field_groups}));
    }
    ctx.out.line(schema["$id"].as_str().unwrap_or_default());
    Ok(())
}

fn list(ctx: &Context, global: bool) -> anyhow::Result<()> {
    let container = if global {
        Container::Global
    } else {
        Container::Tenant
    };
    let schemas = ctx
        .client
        .list_schemas(container)
        .context("listing schemas")?;
    if ctx.out.json {
        let items: Vec<Value> = schemas
            .iter()
            .map(|schema| {
                json!({"$id": schema.id, "meta:altId": schema.alt_id, "title": schema.title, "version": schema.version})
            })
            .collect();
        return ctx.out.print_json(&Value::Array(items));
    }
    let mut table = Table::new(&["TITLE", "VERSION", "$ID"]);
    for schema in schemas {
        table.row(vec![
            schema.title.unwrap_or_default(),
            schema.version.unwrap_or_default(),
            schema.id,
        ]);
    }
    table.print(&ctx.out, "no schemas");
    Ok(())
}
