//! The `dispatcher` binary: runs statement batches in-process or across renderer nodes,
//! with run state in SQLite so a killed run resumes where it stopped; `serve` is the
//! long-lived control plane that `submit`, `status`, `watch` and `cancel` talk to.

mod farm;
mod service;
mod state;

use renderer::wire::ToWire;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use pressrun_engine::run::Progress;
use pressrun_proto::v1::dispatcher_client::DispatcherClient;
use pressrun_proto::v1::{
    CancelRunRequest, ListRunsRequest, RunProgress, RunState, SubmitRunRequest, WatchRunRequest,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes, as for `renderer`.
mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const REJECTED: u8 = 3;
    pub const TEMPLATE: u8 = 4;
}

#[derive(Parser)]
#[command(
    name = "dispatcher",
    version,
    about = "Pressrun control plane: shards runs over renderer nodes, exactly once, resumable",
    long_about = "Pressrun control plane. `dispatcher run` cuts the input into shards of consecutive \
records and renders them in-process (no --renderer) or on renderer nodes (`renderer serve`) over gRPC, \
with a bounded number of shards in flight per node. A node that fails, hangs or answers garbage has its \
shards re-sent elsewhere. Shards are committed in input order, exactly once, and the run state lives in \
SQLite: a dispatcher killed mid-run and started again with the same arguments resumes without redoing \
committed shards. The output is byte-identical to `renderer render` with the same options. \
`dispatcher serve` runs the same as a gRPC service (submit, watch, cancel, list runs, render one \
document on demand).\n\n\
Exit codes: 0 all records rendered; 1 run failed or cancelled; 2 bad command line; 3 completed with \
rejected records; 4 template does not compile."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log level filter (also RUST_LOG).
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    /// Write logs as JSON lines.
    #[arg(long, global = true)]
    log_json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run a template over a data file, in-process or across renderer nodes.
    Run(Box<FarmArgs>),
    /// Serve the Dispatcher gRPC service until SIGINT.
    Serve(Box<ServeArgs>),
    /// Submit a run to a dispatcher server and print its id.
    Submit(Box<SubmitArgs>),
    /// List the runs a dispatcher server knows.
    Status {
        #[command(flatten)]
        conn: ClientArgs,
    },
    /// Follow a run's progress until it ends; the exit code is the run's.
    Watch {
        #[command(flatten)]
        conn: ClientArgs,
        /// Run id from `submit`.
        run: String,
    },
    /// Cancel a run (committed shards stay; submitting it again resumes it).
    Cancel {
        #[command(flatten)]
        conn: ClientArgs,
        /// Run id from `submit`.
        run: String,
    },
    /// List the runs recorded in a state database.
    Runs {
        /// Run-state database.
        #[arg(long)]
        state: PathBuf,
    },
}

/// How runs reach renderer nodes (shared by `run` and `serve`).
#[derive(Args)]
struct NodeArgs {
    /// Renderer node host:port (repeatable; a name stands for every address it resolves to);
    /// none = render in-process on all cores.
    #[arg(long = "renderer")]
    renderers: Vec<String>,
    /// Seconds a node may take for one shard before it is re-sent elsewhere.
    #[arg(long, default_value_t = 120)]
    shard_timeout_seconds: u64,
    /// Shards in flight per node.
    #[arg(long, default_value_t = 2)]
    credits: usize,
    /// Attempts before one shard fails the run.
    #[arg(long, default_value_t = 8)]
    max_attempts: u32,
    /// Serve Prometheus metrics at http://ADDR/metrics (documents and pages rendered,
    /// shards in flight per node, retries, node health, shard latency).
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Talk TLS to the renderer nodes, trusting this PEM CA certificate.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Name the nodes' certificates carry (default: the host of each --renderer).
    #[arg(long, requires = "tls_ca")]
    tls_domain: Option<String>,
    /// File holding the bearer token the nodes expect. Also read from PRESSRUN_TOKEN.
    #[arg(long)]
    token_file: Option<PathBuf>,
}

impl NodeArgs {
    /// The nodes, state and security every run of this process uses.
    fn config(
        &self,
        state: PathBuf,
        on_demand_threads: usize,
    ) -> anyhow::Result<service::ServerConfig> {
        Ok(service::ServerConfig {
            renderers: self.renderers.clone(),
            state,
            shard_timeout: Duration::from_secs(self.shard_timeout_seconds),
            credits: self.credits,
            max_attempts: self.max_attempts,
            tls_ca: self
                .tls_ca
                .as_ref()
                .map(std::fs::read)
                .transpose()
                .context("cannot read --tls-ca")?,
            tls_domain: self.tls_domain.clone(),
            token: read_token(&self.token_file)?,
            on_demand_threads,
        })
    }
}

#[derive(Args)]
struct FarmArgs {
    #[command(flatten)]
    common: renderer::args::RunArgs,
    #[command(flatten)]
    nodes: NodeArgs,
    /// Run-state database (default: OUT/run-state.sqlite).
    #[arg(long)]
    state: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:50050")]
    listen: std::net::SocketAddr,
    /// Run-state database shared by every run.
    #[arg(long)]
    state: PathBuf,
    /// Threads of the on-demand pool (single documents never wait behind batch runs).
    #[arg(long, default_value_t = 1)]
    on_demand_threads: usize,
    /// Serve TLS with this PEM certificate chain (with --listen-tls-key).
    #[arg(long, requires = "listen_tls_key")]
    listen_tls_cert: Option<PathBuf>,
    /// PEM private key for --listen-tls-cert.
    #[arg(long, requires = "listen_tls_cert")]
    listen_tls_key: Option<PathBuf>,
    /// File holding a bearer token every Dispatcher call must carry (health stays open).
    #[arg(long)]
    listen_token_file: Option<PathBuf>,
    #[command(flatten)]
    nodes: NodeArgs,
}

/// How to reach a dispatcher server.
#[derive(Args)]
struct ClientArgs {
    /// Dispatcher server address host:port.
    #[arg(long)]
    server: String,
    /// Talk TLS to the server, trusting this PEM CA certificate.
    #[arg(long)]
    server_tls_ca: Option<PathBuf>,
    /// Name the server's certificate carries (default: the host of --server).
    #[arg(long, requires = "server_tls_ca")]
    server_tls_domain: Option<String>,
    /// File holding the server's bearer token. Also read from PRESSRUN_TOKEN.
    #[arg(long)]
    server_token_file: Option<PathBuf>,
}

#[derive(Args)]
struct SubmitArgs {
    #[command(flatten)]
    conn: ClientArgs,
    #[command(flatten)]
    common: renderer::args::RunArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if cli.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
    match real_main(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) if e.downcast_ref::<farm::TemplateError>().is_some() => {
            eprintln!("{e}");
            ExitCode::from(exit::TEMPLATE)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::FAILED)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn read_token(file: &Option<PathBuf>) -> anyhow::Result<Option<String>> {
    Ok(match file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))?
                .trim()
                .to_string(),
        ),
        None => std::env::var("PRESSRUN_TOKEN").ok(),
    })
}

fn serve_metrics(
    rt: &tokio::runtime::Runtime,
    addr: Option<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    if let Some(addr) = addr {
        let _guard = rt.enter();
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))?;
    }
    Ok(())
}

type Client = DispatcherClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        pressrun_proto::transport::Bearer,
    >,
>;

async fn client(c: &ClientArgs) -> anyhow::Result<Client> {
    let server = &c.server;
    let scheme = if c.server_tls_ca.is_some() {
        "https"
    } else {
        "http"
    };
    let mut endpoint =
        tonic::transport::Endpoint::from_shared(format!("{scheme}://{server}"))?.tcp_nodelay(true);
    if let Some(ca) = &c.server_tls_ca {
        let ca = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
        let host = server
            .rsplit_once(':')
            .map_or(server.as_str(), |(h, _)| h)
            .to_string();
        let domain = c.server_tls_domain.clone().unwrap_or(host);
        endpoint = endpoint.tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca))
                .domain_name(domain),
        )?;
    }
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot reach the dispatcher at {server}"))?;
    let bearer =
        pressrun_proto::transport::Bearer::new(read_token(&c.server_token_file)?.as_deref())
            .context("the token has characters a header cannot carry")?;
    Ok(DispatcherClient::with_interceptor(channel, bearer))
}

fn print_progress(p: &RunProgress) {
    let state = RunState::try_from(p.state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("RUN_STATE_")
                .to_lowercase()
        })
        .unwrap_or_default();
    println!(
        "{}  {:<9}  records {} · documents {} · pages {} · rejected {}  {}",
        p.run_id, state, p.records, p.documents, p.pages, p.rejected, p.message
    );
}

fn real_main(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Runs { state } => {
            for r in state::State::open(&state)?.runs()? {
                println!(
                    "{}  {:<9}  shards committed {}  {}",
                    r.id, r.status, r.committed, r.description
                );
            }
            Ok(exit::OK)
        }
        Command::Serve(a) => {
            let rt = runtime()?;
            serve_metrics(&rt, a.nodes.metrics_listen)?;
            let config = a.nodes.config(a.state.clone(), a.on_demand_threads)?;
            let read = |p: &PathBuf| {
                std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
            };
            let security = service::ServerSecurity {
                tls: match (&a.listen_tls_cert, &a.listen_tls_key) {
                    (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
                    _ => None,
                },
                token: match &a.listen_token_file {
                    Some(f) => Some(
                        String::from_utf8(read(f)?)
                            .context("the token file is not UTF-8")?
                            .trim()
                            .to_string(),
                    ),
                    None => None,
                },
            };
            rt.block_on(service::serve(a.listen, config, security))?;
            Ok(exit::OK)
        }
        Command::Submit(a) => {
            let abs = |p: &PathBuf| std::path::absolute(p).map(|p| p.display().to_string());
            let run_date = a.common.run_date();
            let opts = a.common.run_options(run_date);
            let req = SubmitRunRequest {
                template_dir: abs(&a.common.template)?,
                data: abs(&opts.data)?,
                out: abs(&opts.out)?,
                params: Some((&opts.output).to_wire()),
                batch_records: opts.batch_records,
                limit: opts.limit,
            };
            let id = runtime()?.block_on(async {
                anyhow::Ok(
                    client(&a.conn)
                        .await?
                        .submit_run(req)
                        .await?
                        .into_inner()
                        .run_id,
                )
            })?;
            println!("{id}");
            Ok(exit::OK)
        }
        Command::Status { conn } => {
            let runs = runtime()?.block_on(async {
                anyhow::Ok(
                    client(&conn)
                        .await?
                        .list_runs(ListRunsRequest {})
                        .await?
                        .into_inner()
                        .runs,
                )
            })?;
            for p in &runs {
                print_progress(p);
            }
            Ok(exit::OK)
        }
        Command::Cancel { conn, run } => {
            runtime()?.block_on(async {
                anyhow::Ok(
                    client(&conn)
                        .await?
                        .cancel_run(CancelRunRequest { run_id: run })
                        .await?,
                )
            })?;
            Ok(exit::OK)
        }
        Command::Watch { conn, run } => {
            let last = runtime()?.block_on(async {
                let mut stream = client(&conn)
                    .await?
                    .watch_run(WatchRunRequest { run_id: run })
                    .await?
                    .into_inner();
                let mut last = None;
                while let Some(p) = stream.message().await? {
                    print_progress(&p);
                    last = Some(p);
                }
                anyhow::Ok(last)
            })?;
            Ok(match last {
                Some(p) if p.state == RunState::Succeeded as i32 && p.rejected > 0 => {
                    exit::REJECTED
                }
                Some(p) if p.state == RunState::Succeeded as i32 => exit::OK,
                _ => exit::FAILED,
            })
        }
        Command::Run(a) => {
            let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
            let out = a.common.out.clone();
            let state = a
                .state
                .clone()
                .unwrap_or_else(|| out.join("run-state.sqlite"));
            let run_date = a.common.run_date();
            let config = a.nodes.config(state, 1)?;
            let opts = config.farm(
                a.common.template.clone(),
                a.common.fragments.clone(),
                a.common.run_options(run_date.clone()),
                None,
                Some(drain_rx),
            );
            let bar = (!a.common.quiet && std::io::stderr().is_terminal()).then(|| {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.enable_steady_tick(Duration::from_millis(200));
                bar
            });
            let bar_for_progress = bar.clone();
            let progress: Arc<dyn Fn(Progress) + Send + Sync> = Arc::new(move |p: Progress| {
                if let Some(bar) = &bar_for_progress {
                    bar.set_message(format!(
                        "records {} · documents {} · pages {} · rejected {}",
                        p.records, p.documents, p.pages, p.rejected
                    ));
                }
            });
            let rt = runtime()?;
            serve_metrics(&rt, a.nodes.metrics_listen)?;
            rt.spawn(async move {
                pressrun_proto::transport::shutdown_signal().await;
                let _ = drain_tx.send(true);
            });
            let summary = rt.block_on(farm::run(opts, progress))?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            let report = serde_json::json!({ "run_date": run_date, "summary": summary, "elapsed_seconds": summary.elapsed.as_secs_f64() });
            std::fs::write(
                out.join("summary.json"),
                serde_json::to_vec_pretty(&report)?,
            )?;
            println!("{}", summary.line());
            Ok(if summary.rejected > 0 {
                exit::REJECTED
            } else {
                exit::OK
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
