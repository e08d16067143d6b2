//! The `lakeport` binary: `serve` runs the API on the embedded default (SQLite and local
//! files under one data directory); `config show` prints the effective configuration; the
//! client commands (`schema`, `dataset`, `ingest`, `batch`, `download`) talk HTTP to a
//! running server (`cli`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use lakeport_config::redact_url_password;
use lakeport_config::{Config, LogFormat, TokenConfig};
use lakeport_metastore::{Metastore, OpenOptions};
use rand::RngCore;

mod cli;
mod listener;
mod previewer;
mod tables;

/// Lakeport: a self-hostable batch-ingestion service and data catalog that speaks the
/// Adobe Experience Platform APIs.
#[derive(Debug, Parser)]
#[command(name = "lakeport", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the API server on the configured metastore.
    Serve(ServeArgs),
    /// Runs ingestion workers only (no HTTP), for separate worker processes.
    Worker(ServeArgs),
    /// Applies metastore migrations and exits.
    Migrate(ConfigArgs),
    /// Inspects the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    #[command(flatten)]
    Client(cli::ClientCommand),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Prints the effective configuration (file, then LAKEPORT__ variables, then flags)
    /// with secrets redacted.
    Show(ServeArgs),
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// TOML configuration file; LAKEPORT__SECTION__KEY variables override it.
    #[arg(long, short = 'c', env = "LAKEPORT_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for the embedded metastore, objects and the generated token.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long)]
    listen: Option<String>,
    /// Accept this bearer token for any organization (repeatable).
    #[arg(long = "token")]
    tokens: Vec<String>,
    /// Accept only these x-api-key values (repeatable; default: any).
    #[arg(long = "api-key")]
    api_keys: Vec<String>,
}

fn load_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut config = Config::load(args.config.config.as_deref(), std::env::vars())?;
    if let Some(dir) = &args.config.data_dir {
        config.server.data_dir = dir.clone();
    }
    if let Some(listen) = &args.listen {
        config.server.listen = listen.clone();
    }
    config
        .auth
        .tokens
        .extend(args.tokens.iter().map(|token| TokenConfig::any_org(token)));
    config.auth.api_keys.extend(args.api_keys.iter().cloned());
    config.validate()?;
    Ok(config)
}

/// A delta-rs target whose warnings only restate how Lakeport's tables are configured.
const QUIET_TARGET: &str = "deltalake_core::kernel::snapshot::stats_projection=error";

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Lakeport's tables declare no data-skipping columns (their stats hold numRecords only),
    // which delta-rs reports as a warning for every filtered column of every query.
    let filter = match QUIET_TARGET.parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Ingestion allocates and frees many small values per row, across the decoding and the
/// encoding threads; mimalloc handles that better than glibc's allocator
/// (docs/BENCHMARKS.md). Freed blocks of 16 KiB to 8 MiB are kept for reuse, up to
/// `ingest.block_cache_mb` (lakeport-alloc).
#[global_allocator]
static ALLOCATOR: lakeport_alloc::Allocator = lakeport_alloc::Allocator;

/// mimalloc v3's `mi_option_purge_delay` (libmimalloc-sys names no constant for it; the
/// test `mimalloc_option_15_is_the_purge_delay` checks the number).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc return freed pages to the system at once rather than after its default
/// second: a batch's buffers are freed in bursts, and a second later the next burst has
/// reused none of them, so the delay only raised the peak RSS (docs/BENCHMARKS.md). The
/// blocks a batch frees and allocates again at once are kept by lakeport-alloc instead,
/// within a budget.
/// `MIMALLOC_PURGE_DELAY` in the environment still decides, as mimalloc documents.
#[allow(unsafe_code)]
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set stores an integer in mimalloc's option table, which it reads
        // atomically; 0 is a valid purge delay (immediate).
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
}

fn main() -> std::process::ExitCode {
    tune_allocator();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(cli::exit_code(&err))
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Client(command) => cli::run(command),
        Command::Config {
            command: ConfigCommand::Show(args),
        } => {
            let config = load_config(&args)?;
            print!("{}", config.redacted_toml());
            if config.auth.tokens.is_empty() {
                println!(
                    "\n# No tokens are configured: `lakeport serve` uses the token kept in {}",
                    token_path(&config.server.data_dir).display()
                );
            }
            Ok(())
        }
        Command::Migrate(args) => {
            let args = ServeArgs {
                config: args,
                listen: None,
                tokens: Vec::new(),
                api_keys: Vec::new(),
            };
            let config = load_config(&args)?;
            init_tracing(&config);
            runtime(&config)?.block_on(async {
                std::fs::create_dir_all(&config.server.data_dir).with_context(|| {
                    format!(
                        "creating data directory {}",
                        config.server.data_dir.display()
                    )
                })?;
                let metastore = open_metastore(&config).await?;
                let storage = open_storage(&config).await?;
                convert_tables(metastore.as_ref(), &storage).await?;
                tracing::info!("metastore is up to date");
                Ok(())
            })
        }
        Command::Serve(args) => {
            let config = load_config(&args)?;
            init_tracing(&config);
            keep_blocks(&config);
            runtime(&config)?.block_on(serve(config))
        }
        Command::Worker(args) => {
            let config = load_config(&args)?;
            init_tracing(&config);
            keep_blocks(&config);
            runtime(&config)?.block_on(work(config))
        }
    }
}

/// Sets how much freed memory the allocator keeps for reuse (`ingest.block_cache_mb`).
fn keep_blocks(config: &Config) {
    lakeport_alloc::set_budget(config.ingest.block_cache_mb as usize * 1024 * 1024);
}

/// The async runtime, its blocking pool bounded by `server.max_blocking_threads` (tokio's
/// default, 512, let a soak grow threads and their allocator heaps with the load).
fn runtime(config: &Config) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(usize::try_from(config.server.max_blocking_threads).unwrap_or(512))
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Opens the metastore the configuration names: SQLite (`sqlite://…`, the default) or
/// PostgreSQL (`postgres://…`).
async fn open_metastore(config: &Config) -> anyhow::Result<Arc<dyn Metastore>> {
    let options = OpenOptions {
        durability: config.metastore.durability,
        max_connections: usize::try_from(config.metastore.max_connections).unwrap_or(usize::MAX),
    };
    let url = config.metastore_url();
    lakeport_metastore::open(&url, options)
        .await
        .with_context(|| format!("opening the metastore at {}", redact_url_password(&url)))
}

/// Converts the datasets promoted before they were Delta tables (an upgrade): each gets its
/// table, its history written as commits, before this node serves or takes jobs.
async fn convert_tables(
    metastore: &dyn Metastore,
    storage: &lakeport_storage::Storage,
) -> anyhow::Result<()> {
    let converted = lakeport_jobs::tables::convert_datasets(metastore, storage)
        .await
        .context("converting datasets to Delta tables")?;
    if converted.datasets > 0 {
        tracing::info!(
            datasets = converted.datasets,
            commits = converted.commits,
            "datasets converted to Delta tables"
        );
    }
    Ok(())
}

fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("auth-token")
}

/// Returns the token kept in the data directory, creating it on first start.
fn data_dir_token(data_dir: &Path) -> anyhow::Result<(String, bool)> {
    let path = token_path(data_dir);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let token = existing.trim().to_owned();
        if !token.is_empty() {
            return Ok((token, false));
        }
    }
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let temporary = path.with_extension("tmp");
    write_private(&temporary, &token)
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok((token, true))
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

async fn serve(mut config: Config) -> anyhow::Result<()> {
    let data_dir = config.server.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let generated_token = if config.auth.tokens.is_empty() {
        let (token, created) = data_dir_token(&data_dir)?;
        config.auth.tokens.push(TokenConfig::any_org(&token));
        Some((token, created))
    } else {
        None
    };
    let metastore: Arc<dyn lakeport_metastore::Metastore> = open_metastore(&config).await?;
    let storage = open_storage(&config).await?;
    convert_tables(metastore.as_ref(), &storage).await?;
    let state = lakeport_api::AppState::new(
        &config,
        Arc::clone(&metastore),
        storage.clone(),
        Some(Arc::new(previewer::ParquetPreviewer)),
    )
    .with_row_reader(Arc::new(previewer::ParquetPreviewer))
    .with_tables(Arc::new(tables::DeltaTables {
        metastore: Arc::clone(&metastore),
        storage: storage.clone(),
    }));
    // Uploads are processed as they arrive only where this process's own workers can take
    // the result: with workers here and the files on its local disk.
    let early = (config.ingest.early_processing && config.ingest.workers > 0 && storage.is_local())
        .then(|| {
            lakeport_jobs::EarlyProcessing::new(
                Arc::clone(&metastore),
                storage.clone(),
                config.work_dir(),
                worker_ingest_config(&config),
            )
        });
    let state = match &early {
        Some(early) => state.with_upload_watcher(Arc::new(early.clone())),
        None => state,
    };
    // One engine for the wire endpoint and the REST API's queries, built before the banner
    // (its pg_catalog template takes a moment) so the banner's lines come together.
    let query_service = Arc::new(
        lakeport_query::QueryService::new(
            lakeport_api::context::Auth::from_config(&config.auth),
            Arc::clone(&metastore),
            storage.clone(),
            &config.query,
        )
        .map_err(anyhow::Error::msg)?,
    );
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("listening on {}", config.server.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    tracing::info!(listen = %address, data_dir = %data_dir.display(), "lakeport is serving");
    println!(
        "Lakeport {} is listening on http://{address} (data in {})",
        env!("CARGO_PKG_VERSION"),
        data_dir.display()
    );
    let query_tls = match (&config.query.tls_cert, &config.query.tls_key) {
        (Some(cert), Some(key)) if config.query.enabled => {
            Some(lakeport_query::tls_acceptor(cert, key).map_err(anyhow::Error::msg)?)
        }
        _ => None,
    };
    let query_listener = if config.query.enabled {
        let listener = lakeport_query::bind(&config.query.listen)
            .await
            .with_context(|| {
                format!(
                    "listening on {} for the Query Service (set query.listen, or query.enabled = false)",
                    config.query.listen
                )
            })?;
        let address = listener.local_addr().context("reading the bound address")?;
        let tls = match (&query_tls, config.query.tls_required) {
            (None, _) => "no TLS",
            (Some(_), false) => "TLS offered",
            (Some(_), true) => "TLS required",
        };
        println!(
            "Query Service (PostgreSQL wire) is listening on {address}: user = the org id, password = an API token, database = <sandbox>:all, {tls}"
        );
        Some(listener)
    } else {
        None
    };
    let wire_port = match &query_listener {
        Some(listener) => Some(
            listener
                .local_addr()
                .context("reading the bound address")?
                .port(),
        ),
        None => None,
    };
    let state = state.with_query_engine(Arc::clone(&query_service) as _, wire_port);
    if let Some((token, created)) = &generated_token {
        print_welcome(address, &data_dir, token, *created);
        if config.console.enabled {
            println!(
                "Or open the web console at http://{address}{}/ and sign in with this token.\n",
                config.console.path
            );
        }
    }
    // One signal stops both at once: the listener drains its connections while each worker
    // finishes the job in hand, both within server.shutdown_timeout_secs.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("stopping: draining requests and the jobs in hand");
        let _ = stop.send(true);
    });
    if let Some(listener) = query_listener {
        let service = query_service;
        let mut query_stopped = stopped.clone();
        tokio::spawn(lakeport_query::serve(
            listener,
            service,
            query_tls,
            async move {
                let _ = query_stopped.wait_for(|stop| *stop).await;
            },
        ));
    }
    let workers = spawn_workers(
        &config,
        metastore,
        storage,
        config.ingest.workers,
        early,
        &stopped,
    );
    let auth = state.auth().clone();
    let sql = state.query().map(|wiring| lakeport_console::SqlEngine {
        engine: Arc::clone(&wiring.engine),
        timeout: std::time::Duration::from_secs(config.query.select_timeout_secs),
    });
    let api = lakeport_api::app(state);
    let app = if config.console.enabled {
        tracing::info!(path = %config.console.path, "web console enabled");
        let https = config
            .server
            .public_origin
            .as_deref()
            .is_some_and(|origin| origin.starts_with("https://"));
        lakeport_console::mount(api, auth, &config.console, https, sql)
    } else {
        axum::Router::new().fallback_service(api)
    };
    let mut http_stopped = stopped.clone();
    listener::serve(
        listener,
        app,
        listener::Limits::from_config(&config.server),
        async move {
            let _ = http_stopped.wait_for(|stop| *stop).await;
        },
    )
    .await;
    for worker in workers {
        let _ = worker.await;
    }
    tracing::info!("lakeport stopped");
    Ok(())
}

fn print_welcome(address: SocketAddr, data_dir: &Path, token: &str, created: bool) {
    let path = token_path(data_dir);
    let base = format!("http://{address}");
    let headers = format!(
        "-H \"Authorization: Bearer {token}\" -H 'x-api-key: my-client' -H 'x-gw-ims-org-id: ACME0123456789ABCDEF0123@AdobeOrg' -H 'x-sandbox-name: prod'"
    );
    if created {
        println!(
            "Generated an API token and saved it in {}:\n\n  {token}\n",
            path.display()
        );
    } else {
        println!(
            "Using the API token saved in {}:\n\n  {token}\n",
            path.display()
        );
    }
    println!("Create a dataset, then a batch in it (Adobe's \"Create a batch\" call):\n");
    println!(
        "DATASET=$(curl -s -X POST {base}/data/foundation/catalog/dataSets {headers} -H 'content-type: application/json' -d '{{\"name\": \"My first dataset\"}}' | tr -d '[]\"' | cut -d/ -f3)"
    );
    println!(
        "curl -s -X POST {base}/data/foundation/import/batches {headers} -H 'accept: application/json' -H 'content-type: application/json' -d \"{{\\\"datasetId\\\": \\\"$DATASET\\\"}}\"; echo\n"
    );
}

async fn open_storage(config: &Config) -> anyhow::Result<lakeport_storage::Storage> {
    let url = config.storage_url();
    let storage = lakeport_api::open_storage(config)
        .with_context(|| format!("opening object storage at {url}"))?;
    storage
        .check()
        .await
        .with_context(|| format!("reaching object storage at {url} (check storage.endpoint, the bucket and the credentials)"))?;
    Ok(storage)
}

/// The ingestion settings workers run with: a batch uses no more threads than the process
/// has CPUs.
fn worker_ingest_config(config: &Config) -> lakeport_config::IngestConfig {
    let mut ingest = config.ingest.clone();
    let cpus = std::thread::available_parallelism().ok().map(usize::from);
    ingest.batch_threads = lakeport_jobs::batch_threads(ingest.batch_threads, cpus);
    if ingest.batch_threads < config.ingest.batch_threads {
        tracing::info!(
            configured = config.ingest.batch_threads,
            cpus,
            batch_threads = ingest.batch_threads,
            "a batch uses no more threads than the process has CPUs"
        );
    }
    ingest
}

/// Starts `count` job runners that stop when `stopped` turns true; they use `early`'s
/// runs of uploads (`lakeport serve`'s own workers only).
fn spawn_workers(
    config: &Config,
    metastore: Arc<dyn lakeport_metastore::Metastore>,
    storage: lakeport_storage::Storage,
    count: u32,
    early: Option<lakeport_jobs::EarlyProcessing>,
    stopped: &tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "lakeport".to_owned());
    let tables = lakeport_jobs::TableCache::new();
    let ingest = worker_ingest_config(config);
    (0..count)
        .map(|index| {
            let runner = lakeport_jobs::Runner::new(lakeport_jobs::JobContext {
                metastore: Arc::clone(&metastore),
                storage: storage.clone(),
                work_dir: config.work_dir(),
                config: ingest.clone(),
                stream: config.stream.clone(),
                worker_id: format!("{host}-{}-{index}", std::process::id()),
                tables: tables.clone(),
                early: early.clone(),
            });
            let mut stopped = stopped.clone();
            let grace = std::time::Duration::from_secs(config.server.shutdown_timeout_secs);
            tokio::spawn(runner.run(
                async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                },
                grace,
            ))
        })
        .collect()
}

/// `lakeport worker`: ingestion workers without the HTTP API.
async fn work(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.server.data_dir).with_context(|| {
        format!(
            "creating data directory {}",
            config.server.data_dir.display()
        )
    })?;
    let metastore: Arc<dyn lakeport_metastore::Metastore> = open_metastore(&config).await?;
    let storage = open_storage(&config).await?;
    convert_tables(metastore.as_ref(), &storage).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let count = config.ingest.workers.max(1);
    let workers = spawn_workers(&config, metastore, storage, count, None, &stopped);
    println!(
        "Lakeport worker running {count} job runner(s) (data in {})",
        config.server.data_dir.display()
    );
    shutdown_signal().await;
    let _ = stop.send(true);
    for worker in workers {
        let _ = worker.await;
    }
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down gracefully");
}

#[cfg(test)]
mod tests {
    /// `MI_OPTION_PURGE_DELAY` names mimalloc's purge delay: the option holds v3's default
    /// for it, 1000 ms (no other option defaults to 1000).
    #[test]
    #[allow(unsafe_code)]
    fn mimalloc_option_15_is_the_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: mi_option_get reads an integer from mimalloc's option table.
        let delay = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(delay, 1000);
    }
}
