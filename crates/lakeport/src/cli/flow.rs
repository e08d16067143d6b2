//! `lakeport flow create --dataset …`: the streaming connection chain of Adobe's HTTP API
//! tutorial (base connection, source and target connections, flow) for one dataset.

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::json;

use super::Context;

const STREAMING_SPEC: &str = "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb";
const DATALAKE_SPEC: &str = "c604ff05-7f1a-43c0-8e18-33bf874cb11c";
const FLOW_SPEC: &str = "d8a6f005-7eaf-4153-983e-e8574508b877";

#[derive(Debug, Subcommand)]
pub enum FlowCommand {
    /// Creates a streaming connection and flow into a dataset and prints the inlet URL.
    Create {
        /// The target dataset id.
        #[arg(long)]
        dataset: String,
        /// Name of the connection and flow [default: "<dataset name> stream"].
        #[arg(long)]
        name: Option<String>,
        /// `xdm` (envelopes) or `raw` (plain JSON objects).
        #[arg(long, default_value = "xdm", value_parser = ["xdm", "raw"])]
        data_type: String,
        /// Senders must present a bearer token of the organization.
        #[arg(long)]
        authenticated: bool,
    },
}

pub fn run(ctx: &Context, command: &FlowCommand) -> anyhow::Result<()> {
    let FlowCommand::Create {
        dataset,
        name,
        data_type,
        authenticated,
    } = command;
    let target_dataset = ctx
        .client
        .dataset(dataset)
        .with_context(|| format!("reading dataset {dataset}"))?;
    let name = name
        .clone()
        .unwrap_or_else(|| format!("{} stream", target_dataset.name().unwrap_or(dataset)));
    let client = &ctx.client;
    let base = client
        .create_flow_object(
            "connections",
            &json!({
        "name": name, "connectionSpec": {"id": STREAMING_SPEC, "version": "1.0"},
        "auth": {"specName": "Streaming Connection", "params": {
            "name": name, "dataType": data_type, "authenticationRequired": authenticated}}}),
        )
        .context("creating the streaming connection")?;
    let source = client
        .create_flow_object(
            "sourceConnections",
            &json!({
        "name": format!("{name} source"), "baseConnectionId": base,
        "connectionSpec": {"id": STREAMING_SPEC, "version": "1.0"}}),
        )
        .context("creating the source connection")?;
    let target = client
        .create_flow_object(
            "targetConnections",
            &json!({
        "name": format!("{name} target"), "params": {"dataSetId": dataset},
        "connectionSpec": {"id": DATALAKE_SPEC, "version": "1.0"}}),
        )
        .context("creating the target connection")?;
    let flow = client
        .create_flow_object(
            "flows",
            &json!({
        "name": name, "flowSpec": {"id": FLOW_SPEC, "version": "1.0"},
        "sourceConnectionIds": [source], "targetConnectionIds": [target]}),
        )
        .context("creating the flow")?;
    let connection = client.flow_object("connections", &base)?;
    let params = &connection["auth"]["params"];
    if ctx.out.json {
        ctx.out.print_json(&json!({
            "connectionId": base, "sourceConnectionId": source, "targetConnectionId": target,
            "flowId": flow, "inletId": params["inletId"], "inletUrl": params["inletUrl"],
        }))?;
    } else {
        ctx.out
            .line(params["inletUrl"].as_str().unwrap_or_default());
    }
    Ok(())
}
