//! The client commands of `lakeport`: talk HTTP to a Lakeport (or any AEP-compatible)
//! endpoint through `lakeport-client` to create schemas and datasets, ingest files, and
//! inspect, revert and download batches.
//!
//! Output is a table (or text) for people and JSON with `--json`; progress bars and
//! colours appear only on a terminal. Exit codes: 0 success, 1 failure, 2 usage, 3 a batch
//! did not succeed; every failure prints one line on stderr.

mod batch;
mod dataset;
mod download;
mod flow;
mod ingest;
mod output;
mod profile;
mod schema;
mod stream;
mod transfer;

use std::path::PathBuf;

use clap::{Args, Subcommand};

pub use output::Output;

/// Exit code for a usage error (bad flags, missing settings).
pub const EXIT_USAGE: u8 = 2;
/// Exit code when a batch ended in another state than `success`.
pub const EXIT_BATCH_FAILED: u8 = 3;

/// A failure with its own exit code; any other error exits with 1.
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl Exit {
    /// Returns a usage error (exit code 2).
    pub fn usage(message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Self {
            code: EXIT_USAGE,
            message: message.into(),
        })
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// Returns the process exit code for an error of any command.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<Exit>())
        .map_or(1, |exit| exit.code)
}

/// Where to connect, who to be, and how to print; every client command takes these.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection and output")]
pub struct GlobalArgs {
    /// Endpoint base URL [default: http://127.0.0.1:8080].
    #[arg(long, env = "LAKEPORT_URL", global = true, display_order = 101)]
    url: Option<String>,
    /// Bearer token [default: ./lakeport-data/auth-token when present].
    #[arg(
        long,
        env = "LAKEPORT_TOKEN",
        global = true,
        hide_env_values = true,
        display_order = 102
    )]
    token: Option<String>,
    /// Organization (x-gw-ims-org-id), e.g. ACME0123456789ABCDEF0123@AdobeOrg.
    #[arg(long, env = "LAKEPORT_ORG", global = true, display_order = 103)]
    org: Option<String>,
    /// Sandbox (x-sandbox-name) [default: prod].
    #[arg(long, env = "LAKEPORT_SANDBOX", global = true, display_order = 104)]
    sandbox: Option<String>,
    /// Client id (x-api-key) [default: lakeport-cli].
    #[arg(
        long = "api-key",
        env = "LAKEPORT_API_KEY",
        global = true,
        display_order = 105
    )]
    api_key: Option<String>,
    /// Profile file with url, token, org, sandbox and api_key
    /// [default: ~/.config/lakeport/profile.toml when present].
    #[arg(
        long,
        env = "LAKEPORT_PROFILE",
        global = true,
        value_name = "FILE",
        display_order = 106
    )]
    profile: Option<PathBuf>,
    /// Prints JSON for scripts instead of tables.
    #[arg(long, global = true, display_order = 107)]
    json: bool,
}

/// The client commands, flattened into the binary's top-level commands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Creates, lists and shows XDM schemas (client).
    Schema {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(subcommand)]
        command: schema::SchemaCommand,
    },
    /// Creates, lists and shows datasets (client).
    Dataset {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(subcommand)]
        command: dataset::DatasetCommand,
    },
    /// Uploads files and folders into new batches of a dataset (client).
    Ingest {
        // Before `global`, whose help heading would otherwise cover these options too.
        #[command(flatten)]
        args: ingest::IngestArgs,
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// Lists, shows, aborts and reverts batches and shows their rejected rows (client).
    Batch {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(subcommand)]
        command: batch::BatchCommand,
    },
    /// Creates streaming connections and flows into datasets (client, Flow Service).
    Flow {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(subcommand)]
        command: flow::FlowCommand,
    },
    /// Sends a JSON Lines file (or stdin) of messages to a streaming inlet (client).
    Stream {
        // Before `global`, whose help heading would otherwise cover these options too.
        #[command(flatten)]
        args: stream::StreamArgs,
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// Downloads the data files of a successful batch (client, Data Access API).
    Download {
        // Before `global`, whose help heading would otherwise cover these options too.
        #[command(flatten)]
        args: download::DownloadArgs,
        #[command(flatten)]
        global: GlobalArgs,
    },
}

/// Runs one client command.
pub fn run(command: ClientCommand) -> anyhow::Result<()> {
    let ctx = Context::new(command.global())?;
    let result = match &command {
        ClientCommand::Schema { command, .. } => schema::run(&ctx, command),
        ClientCommand::Dataset { command, .. } => dataset::run(&ctx, command),
        ClientCommand::Ingest { args, .. } => ingest::run(&ctx, args),
        ClientCommand::Batch { command, .. } => batch::run(&ctx, command),
        ClientCommand::Download { args, .. } => download::run(&ctx, args),
        ClientCommand::Stream { args, .. } => stream::run(&ctx, args),
        ClientCommand::Flow { command, .. } => flow::run(&ctx, command),
    };
    result.map_err(explain)
}

impl ClientCommand {
    fn global(&self) -> &GlobalArgs {
        match self {
            Self::Schema { global, .. }
            | Self::Dataset { global, .. }
            | Self::Ingest { global, .. }
            | Self::Batch { global, .. }
            | Self::Download { global, .. }
            | Self::Stream { global, .. }
            | Self::Flow { global, .. } => global,
        }
    }
}

/// What every command gets: the client and the output settings.
pub struct Context {
    pub client: lakeport_client::Client,
    pub out: Output,
}

impl Context {
    fn new(global: &GlobalArgs) -> anyhow::Result<Self> {
        let connection = profile::resolve(global)?;
        let client = lakeport_client::Client::new(&connection)
            .map_err(|err| Exit::usage(err.to_string()))?;
        Ok(Self {
            client,
            out: Output::detect(global.json),
        })
    }
}

/// Adds a hint to errors whose fix is a setting.
fn explain(err: anyhow::Error) -> anyhow::Error {
    let client_error = err
        .chain()
        .find_map(|cause| cause.downcast_ref::<lakeport_client::ClientError>());
    match client_error {
        Some(client_error) if client_error.is_auth() => err.context(
            "the server refused the credentials; check --token/LAKEPORT_TOKEN, --org/LAKEPORT_ORG and --api-key",
        ),
        Some(lakeport_client::ClientError::Unreachable { .. }) => {
            err.context("is the server running? set its address with --url or LAKEPORT_URL")
        }
        _ => err,
    }
}
