//! The `dispatcher` binary: runs statement batches in-process or across renderer nodes,
//! with run state in SQLite so a killed run resumes where it stopped; `serve` is the
//! long-lived control plane that `submit`, `status`, `watch` and `cancel` talk to.

mod agents;
mod farm;
mod preview;
mod remote;
mod roots;
mod service;
mod state;
mod templates;

use renderer::wire::ToWire;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use pressrun_engine::run::{Progress, RunControl, RunStatus};
use pressrun_proto::v1::dispatcher_client::DispatcherClient;
use pressrun_proto::v1::{
    CancelRunRequest, ListRunsRequest, RunProgress, RunState, SubmitRunRequest, WatchRunRequest,
};
use renderer::cli::exit;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
Every run owns its output folder (locked for the run's life; a folder holding another or a finished run \
is refused unless --replace) and commits each shard durably with a journal; a resumed run verifies every \
committed file and re-renders what was damaged.",
    after_long_help = renderer::cli::EXIT_CODES_HELP
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
    /// Submit a run to a dispatcher server and print its id. `--template` is a folder, or
    /// when no folder is at that path a template of the server's registry: NAME (the
    /// approved version in force on the run date) or NAME@VERSION.
    Submit(Box<SubmitArgs>),
    /// The template registry of a `dispatcher serve --users`: publish, approve, schedule
    /// and look up template versions (docs/templates.md, "Registry").
    Template {
        #[command(flatten)]
        conn: ClientArgs,
        #[command(subcommand)]
        what: TemplateCommand,
    },
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
    /// Find a mail piece or a document in a print-production run's output: its print job,
    /// pages, sheets and impressions (one JSON line per place found; exit 1 if none).
    #[command(group(clap::ArgGroup::new("what").required(true).args(["piece", "document", "record"])))]
    Locate {
        /// The run's output folder.
        #[arg(long)]
        out: PathBuf,
        /// Piece number (`42` or `000042`); with --job, only in that job.
        #[arg(long)]
        piece: Option<u32>,
        /// Print job id (`J000001`), with --piece.
        #[arg(long, requires = "piece")]
        job: Option<String>,
        /// Document id (as in documents.jsonl).
        #[arg(long)]
        document: Option<String>,
        /// Input record number.
        #[arg(long)]
        record: Option<u64>,
    },
    /// The reconciliation report of a print-production run from the ledger: pieces
    /// expected, printed, inserted OK, reprinted, resolved and unresolved, duplicates and
    /// disagreements, by printer, inserter and reason. Exit 0 when the run is complete
    /// (every piece inserted OK or resolved), 1 when it is not. Reads the ledger's
    /// database (--state) on this machine, or asks a `dispatcher serve` (--server).
    #[command(
        override_usage = "dispatcher reconcile RUN (--state DB | --server ADDR [TLS, token]) [--json]"
    )]
    Reconcile {
        /// Run id (as `dispatcher runs` lists it).
        run: String,
        /// Run-state database holding the ledger.
        #[arg(long, required_unless_present = "server", conflicts_with = "server")]
        state: Option<PathBuf>,
        /// Ask this dispatcher server instead (its Reconcile RPC).
        #[command(flatten)]
        conn: Option<ClientArgs>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Close a mail piece that is not inserted OK (destroyed, sent by hand, withdrawn),
    /// recorded in the ledger with who (the operating-system user), when and why.
    Resolve {
        /// Run id.
        run: String,
        /// The piece, as JOB/PIECE (e.g. J000001/000042).
        #[arg(long)]
        piece: dispatcher::ledger::PieceId,
        /// Why it needs no reprint (required, kept in the ledger).
        #[arg(long)]
        reason: String,
        /// Run-state database holding the ledger.
        #[arg(long)]
        state: PathBuf,
    },
    /// Enter a finished print-production run's print jobs into the ledger (done by the
    /// run itself when it succeeds; this repeats it after a failure to write the ledger,
    /// and enters nothing twice).
    EnterJobs {
        /// The run's output folder.
        #[arg(long)]
        out: PathBuf,
        /// Run-state database holding the ledger (default: OUT/run-state.sqlite).
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Print an already composed print-production run through the printer agents attached
    /// to a dispatcher server: every print job not yet with an agent goes to a capable
    /// printer that is up (duplex jobs to duplex printers, least queued work first); jobs
    /// no printer can take wait on the server until one attaches. Prints how many were
    /// handed over, wait, or were already queued or printed.
    Print {
        #[command(flatten)]
        conn: ClientArgs,
        /// Run id (as `dispatcher runs` lists it).
        run: String,
        /// Also make the reprints the profile's reprint cap held back for an operator.
        #[arg(long)]
        reprint_held: bool,
    },
    /// The printers and inserters of the agents attached to a dispatcher server: state,
    /// reasons, supplies, queued jobs and impressions, pages per hour. One line per device,
    /// or one JSON object with --json.
    Fleet {
        #[command(flatten)]
        conn: ClientArgs,
        /// Print the fleet as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The access log of a `dispatcher serve --users` registry: every call checked, who
    /// made it, what it was about, allowed or refused and why, oldest first.
    AccessLog {
        /// Run-state database of the server.
        #[arg(long)]
        state: PathBuf,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// List the runs recorded in a state database.
    Runs {
        /// Run-state database.
        #[arg(long)]
        state: PathBuf,
    },
}

#[derive(Subcommand)]
enum TemplateCommand {
    /// Publish a template folder (with its fragment library) as a draft; prints
    /// NAME@VERSION from its manifest. The same files again change nothing; other files
    /// under an existing version are refused. The author role.
    Publish {
        /// The template folder.
        dir: PathBuf,
        /// Fragment library (default: the manifest's `fragments`, else ../fragments).
        #[arg(long)]
        fragments: Option<PathBuf>,
    },
    /// Submit a draft for approval (author).
    Submit {
        id: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Approve a submitted version (approver; never your own version).
    Approve {
        id: String,
        #[arg(long)]
        comment: String,
    },
    /// Reject a submitted version (approver; never your own version).
    Reject {
        id: String,
        #[arg(long)]
        comment: String,
    },
    /// Put an approved version in force from a day (inclusive), optionally to a day
    /// (exclusive) (approver).
    Schedule {
        id: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: Option<String>,
    },
    /// Retire an approved version: in force no more from today (UTC) (approver).
    Retire {
        id: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Every version with its state, author and schedule.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One version and its history (who, when, why).
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Which version was (or will be) in force on a day; exit 1 if none.
    InForce {
        name: String,
        #[arg(long)]
        on: String,
    },
    /// A readable diff of two versions' files (unified, text files line by line;
    /// other files by size and hash). Exit 0 when they are the same, 1 when not.
    Diff { a: String, b: String },
    /// Write a version's files back as a folder: OUT/template and OUT/fragments.
    Fetch {
        id: String,
        /// A folder that does not exist yet.
        #[arg(long)]
        out: PathBuf,
    },
}

fn print_version(v: &pressrun_proto::v1::TemplateVersion) {
    let when = match (v.effective_from.as_str(), v.effective_to.as_str()) {
        ("", _) => String::new(),
        (f, "") => format!("  in force from {f}"),
        (f, t) => format!("  in force from {f} to {t} (exclusive)"),
    };
    println!(
        "{}@{}  {:<9}  by {}  {}{when}",
        v.name, v.version, v.state, v.author, v.hash
    );
}

fn version_json(v: &pressrun_proto::v1::TemplateVersion) -> serde_json::Value {
    serde_json::json!({
        "id": format!("{}@{}", v.name, v.version),
        "name": v.name,
        "version": v.version,
        "hash": v.hash,
        "state": v.state,
        "author": v.author,
        "effective_from": (!v.effective_from.is_empty()).then_some(&v.effective_from),
        "effective_to": (!v.effective_to.is_empty()).then_some(&v.effective_to),
    })
}

fn template_command(conn: &ClientArgs, what: TemplateCommand) -> anyhow::Result<u8> {
    use pressrun_proto::v1::templates_client::TemplatesClient;
    use pressrun_proto::v1::*;
    let rt = runtime()?;
    rt.block_on(async move {
        let (channel, bearer) = channel(conn).await?;
        let max = (pressrun_engine::bundle::MAX_BUNDLE_BYTES + (1 << 20)) as usize;
        let mut c = TemplatesClient::with_interceptor(channel, bearer)
            .max_decoding_message_size(max)
            .max_encoding_message_size(max);
        let transition = |id: String, action: &str, comment: String, from: String, to: String| {
            TransitionRequest {
                id,
                action: action.to_string(),
                comment,
                effective_from: from,
                effective_to: to,
            }
        };
        let req = match what {
            TemplateCommand::Publish { dir, fragments } => {
                let bundle = pressrun_engine::bundle::Bundle::from_dir(&dir, fragments.as_deref())
                    .with_context(|| format!("cannot read the template folder {}", dir.display()))?;
                let v = c
                    .publish(PublishRequest {
                        bundle: Some(renderer::wire::bundle_to_wire(&bundle)),
                    })
                    .await?
                    .into_inner();
                println!("{}@{}", v.name, v.version);
                if !v.created {
                    eprintln!("(already published with the same files: nothing changed)");
                }
                return anyhow::Ok(exit::OK);
            }
            TemplateCommand::Submit { id, comment } => transition(id, "submit", comment, String::new(), String::new()),
            TemplateCommand::Approve { id, comment } => transition(id, "approve", comment, String::new(), String::new()),
            TemplateCommand::Reject { id, comment } => transition(id, "reject", comment, String::new(), String::new()),
            TemplateCommand::Retire { id, comment } => transition(id, "retire", comment, String::new(), String::new()),
            TemplateCommand::Schedule { id, from, to } => {
                transition(id, "schedule", String::new(), from, to.unwrap_or_default())
            }
            TemplateCommand::List { json } => {
                let l = c.list(ListTemplatesRequest {}).await?.into_inner();
                for v in &l.versions {
                    if json {
                        println!("{}", version_json(v));
                    } else {
                        print_version(v);
                    }
                }
                return Ok(exit::OK);
            }
            TemplateCommand::Show { id, json } => {
                let s = c.show(ShowTemplateRequest { id }).await?.into_inner();
                let v = s.version.unwrap_or_default();
                if json {
                    let mut j = version_json(&v);
                    j["history"] = s
                        .history
                        .iter()
                        .map(|e| serde_json::json!({"at": e.at, "event": e.event, "principal": e.principal, "comment": e.comment}))
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&j)?);
                } else {
                    print_version(&v);
                    for e in &s.history {
                        println!("  {}  {:<10}  {}  {}", e.at, e.event, e.principal, e.comment);
                    }
                }
                return Ok(exit::OK);
            }
            TemplateCommand::InForce { name, on } => {
                return match c.in_force(InForceRequest { name, on }).await {
                    Ok(v) => {
                        let v = v.into_inner();
                        println!("{}@{}  {}", v.name, v.version, v.hash);
                        Ok(exit::OK)
                    }
                    Err(s) if s.code() == tonic::Code::FailedPrecondition => {
                        eprintln!("{}", s.message());
                        Ok(exit::FAILED)
                    }
                    Err(s) => Err(s.into()),
                };
            }
            TemplateCommand::Diff { a, b } => {
                let mut bundles = Vec::new();
                for id in [&a, &b] {
                    let got = c.fetch(ShowTemplateRequest { id: id.clone() }).await?.into_inner();
                    bundles.push(renderer::wire::bundle_from_wire(got)?);
                }
                let text = dispatcher::registry::diff(&a, &bundles[0], &b, &bundles[1]);
                print!("{text}");
                return Ok(if text.is_empty() { exit::OK } else { exit::FAILED });
            }
            TemplateCommand::Fetch { id, out } => {
                let b = c.fetch(ShowTemplateRequest { id: id.clone() }).await?.into_inner();
                // The paths are checked (relative, under template/ or fragments/) with
                // the hash before anything is written.
                let bundle = renderer::wire::bundle_from_wire(b)?;
                std::fs::create_dir(&out)
                    .with_context(|| format!("{}: give a folder that does not exist yet", out.display()))?;
                for (path, bytes) in &bundle.files {
                    let p = out.join(path);
                    if let Some(parent) = p.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    std::fs::write(&p, bytes)?;
                }
                println!("{id}: {} files in {}", bundle.files.len(), out.display());
                return Ok(exit::OK);
            }
        };
        let v = c.transition(req).await?.into_inner();
        print_version(&v);
        Ok(exit::OK)
    })
}

/// How runs reach renderer nodes (shared by `run` and `serve`).
#[derive(Args)]
struct NodeArgs {
    /// Renderer node host:port (repeatable; a name stands for every address it resolves to);
    /// none = render in-process on all cores.
    #[arg(long = "renderer")]
    renderers: Vec<String>,
    /// A node that sends nothing for this many seconds (a live node sends progress twice a
    /// second) is stalled: its shard goes elsewhere.
    #[arg(long, default_value_t = 5)]
    stall_seconds: u64,
    /// Upper bound on one shard's time on a node; the deadline is four times the time the
    /// run's observed throughput predicts, at least 30 s, at most this.
    #[arg(long, default_value_t = 600)]
    shard_timeout_seconds: u64,
    /// Shards in flight per node.
    #[arg(long, default_value_t = 2)]
    credits: usize,
    /// Attempts before one shard fails the run.
    #[arg(long, default_value_t = 8)]
    max_attempts: u32,
    /// The run fails (resumably, exit 1) when no node has been healthy for this many
    /// seconds.
    #[arg(long, default_value_t = 600)]
    unavailable_seconds: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics (documents and pages committed,
    /// shards in flight per node, retries by reason, node health, shard latency histogram).
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Talk TLS to the renderer nodes, trusting this PEM CA certificate.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Name the nodes' certificates carry (default: the host of each --renderer).
    #[arg(long, requires = "tls_ca")]
    tls_domain: Option<String>,
    /// File holding the bearer token the nodes expect. Also read from PRESSRUN_TOKEN. An
    /// empty or blank token is an error.
    #[arg(long)]
    token_file: Option<PathBuf>,
}

impl NodeArgs {
    /// The nodes every run of this process uses.
    fn nodes(&self, threads: usize) -> anyhow::Result<farm::Nodes> {
        Ok(farm::Nodes {
            renderers: self.renderers.clone(),
            threads,
            credits: self.credits,
            timing: remote::Timing {
                stall: Duration::from_secs(self.stall_seconds.max(1)),
                shard_floor: Duration::from_secs(30.min(self.shard_timeout_seconds.max(1))),
                shard_max: Duration::from_secs(self.shard_timeout_seconds.max(1)),
            },
            tls_ca: self
                .tls_ca
                .as_ref()
                .map(std::fs::read)
                .transpose()
                .context("cannot read --tls-ca")?,
            tls_domain: self.tls_domain.clone(),
            token: pressrun_proto::transport::read_token(self.token_file.as_deref())?,
        })
    }
}

#[derive(Args)]
struct FarmArgs {
    #[command(flatten)]
    common: renderer::args::RunArgs,
    #[command(flatten)]
    nodes: NodeArgs,
    /// Run registry database (default: OUT/run-state.sqlite).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Print production: once the run succeeds, print it through the printer agents
    /// attached to the dispatcher server at --print-server (whose registry must be this
    /// run's --state).
    #[arg(long, requires_all = ["production", "print_server", "state"])]
    print: bool,
    /// The dispatcher server whose agents print the run (host:port).
    #[arg(long, requires = "print")]
    print_server: Option<String>,
    /// File holding that server's bearer token. Also read from PRESSRUN_TOKEN.
    #[arg(long, requires = "print")]
    print_server_token_file: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:50050")]
    listen: std::net::SocketAddr,
    /// Run registry shared by every run.
    #[arg(long)]
    state: PathBuf,
    /// Folder that every input file of a submitted run must be inside (repeatable).
    #[arg(long = "data-root")]
    data_roots: Vec<PathBuf>,
    /// Folder that every template of a submitted run or of RenderNow must be inside
    /// (repeatable).
    #[arg(long = "template-root")]
    template_roots: Vec<PathBuf>,
    /// Folder that every output folder of a submitted run must be inside (repeatable).
    #[arg(long = "out-root")]
    out_roots: Vec<PathBuf>,
    /// Threads of the on-demand pool (single documents never wait behind batch runs).
    #[arg(long, default_value_t = 1)]
    on_demand_threads: usize,
    /// In-process render threads for runs when there are no --renderer nodes (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Serve TLS with this PEM certificate chain (with --listen-tls-key).
    #[arg(long, requires = "listen_tls_key")]
    listen_tls_cert: Option<PathBuf>,
    /// PEM private key for --listen-tls-cert.
    #[arg(long, requires = "listen_tls_cert")]
    listen_tls_key: Option<PathBuf>,
    /// File holding a bearer token every Dispatcher call must carry (health stays open).
    /// An empty or blank token is an error; without one the server serves only on loopback.
    #[arg(long, conflicts_with = "users")]
    listen_token_file: Option<PathBuf>,
    /// The users file: `[[user]]` with `name`, `roles` (author, approver, operator,
    /// auditor, admin) and `token_sha256` (docs/users.md). Every call must carry a
    /// listed user's token and is checked against that user's roles; every check,
    /// allowed or refused, goes into the access log (`dispatcher access-log`). Read again
    /// on SIGHUP.
    #[arg(long)]
    users: Option<PathBuf>,
    /// Serve without a token on a non-loopback address (a trusted network only).
    #[arg(long)]
    allow_unauthenticated: bool,
    /// A printer that stays down (stopped, unreachable) this many seconds is drained:
    /// the jobs queued to it that it has not started are asked back from its agent and
    /// their pieces move to a printer that is up.
    #[arg(long, default_value_t = 30)]
    drain_after_seconds: u64,
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
    /// File holding the server's bearer token (yours, with --users). Also read from
    /// PRESSRUN_TOKEN.
    #[arg(long, visible_alias = "token-file")]
    server_token_file: Option<PathBuf>,
}

#[derive(Args)]
struct SubmitArgs {
    #[command(flatten)]
    conn: ClientArgs,
    #[command(flatten)]
    common: renderer::args::RunArgs,
    /// Print production: once the run succeeds, the server prints it through its
    /// attached printer agents.
    #[arg(long, requires = "production")]
    print: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    renderer::cli::init_tracing(&cli.log, cli.log_json);
    match real_main(cli) {
        Ok(code) => ExitCode::from(code),
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

type Client = DispatcherClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        pressrun_proto::transport::Bearer,
    >,
>;

async fn client(c: &ClientArgs) -> anyhow::Result<Client> {
    let (channel, bearer) = channel(c).await?;
    Ok(DispatcherClient::with_interceptor(channel, bearer))
}

type AgentsClient = pressrun_proto::v1::print_agents_client::PrintAgentsClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        pressrun_proto::transport::Bearer,
    >,
>;

async fn agents_client(c: &ClientArgs) -> anyhow::Result<AgentsClient> {
    let (channel, bearer) = channel(c).await?;
    Ok(
        pressrun_proto::v1::print_agents_client::PrintAgentsClient::with_interceptor(
            channel, bearer,
        ),
    )
}

async fn channel(
    c: &ClientArgs,
) -> anyhow::Result<(tonic::transport::Channel, pressrun_proto::transport::Bearer)> {
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
    let token = pressrun_proto::transport::read_token(c.server_token_file.as_deref())?;
    let bearer = pressrun_proto::transport::Bearer::new(token.as_deref())
        .context("the token has characters a header cannot carry")?;
    Ok((channel, bearer))
}

fn print_progress(p: &RunProgress) {
    let state = RunState::try_from(p.state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("RUN_STATE_")
                .to_lowercase()
        })
        .unwrap_or_default();
    let shards = if p.shards_total > 0 {
        format!("shards {}/{}", p.shards_committed, p.shards_total)
    } else {
        format!("shards {}", p.shards_committed)
    };
    println!(
        "{}  {:<9}  {shards} · records {} · documents {} · pages {} · rejected {}  {}",
        p.run_id, state, p.records, p.documents, p.pages, p.rejected, p.message
    );
}

fn real_main(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Reconcile {
            run,
            state,
            conn,
            json,
        } => {
            let r: dispatcher::ledger::Reconciliation = match (state, conn) {
                (Some(state), _) => {
                    // Reading a report never creates a database (a mistyped path).
                    if !state.is_file() {
                        anyhow::bail!("{}: no such run-state database", state.display());
                    }
                    dispatcher::ledger::Ledger::open(&state)?.reconcile(&run)?
                }
                (None, Some(conn)) => {
                    let answer = runtime()?.block_on(async {
                        anyhow::Ok(
                            agents_client(&conn)
                                .await?
                                .reconcile(pressrun_proto::v1::ReconcileRequest {
                                    run_id: run.clone(),
                                })
                                .await?
                                .into_inner(),
                        )
                    })?;
                    serde_json::from_str(&answer.json)
                        .context("the server's reconciliation is not the report's JSON")?
                }
                (None, None) => anyhow::bail!("give --state DB or --server ADDR"),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{r}");
            }
            Ok(if r.complete { exit::OK } else { exit::FAILED })
        }
        Command::Resolve {
            run,
            piece,
            reason,
            state,
        } => {
            let by = operator();
            dispatcher::ledger::Ledger::open(&state)?.resolve(&run, &piece, &by, &reason)?;
            println!("{run}: {piece} resolved by {by}");
            Ok(exit::OK)
        }
        Command::EnterJobs { out, state } => {
            use pressrun_engine::run::folder::{MANIFEST, RunManifest};
            let path = out.join(MANIFEST);
            // A regular file of at most 1 MiB: never a FIFO or /dev/zero put in its place.
            let text = pressrun_engine::source::read_regular(
                &path,
                1 << 20,
                pressrun_engine::source::FileKind::Text,
            )
            .with_context(|| format!("cannot read {}", path.display()))?;
            let m: RunManifest = serde_json::from_slice(&text)
                .with_context(|| format!("{} is not a run manifest", path.display()))?;
            if m.status != RunStatus::Succeeded {
                anyhow::bail!(
                    "{}: run {} is {}, not succeeded: finish it first",
                    out.display(),
                    m.run_id,
                    m.status.as_str()
                );
            }
            let plans = dispatcher::ledger::JobPlan::of_run(&out).map_err(anyhow::Error::msg)?;
            let state = state.unwrap_or_else(|| out.join("run-state.sqlite"));
            let added = dispatcher::ledger::Ledger::open(&state)?.register(&m.run_id, &plans)?;
            println!(
                "{}: {added} print jobs entered, {} already in the ledger",
                m.run_id,
                plans.len() as u64 - added
            );
            Ok(exit::OK)
        }
        Command::Runs { state } => {
            for r in state::State::open(&state)?.runs()? {
                println!(
                    "{}  {:<9}  shards committed {}  records {} · documents {} · rejected {}  {}",
                    r.id, r.status, r.committed, r.records, r.documents, r.rejected, r.out
                );
            }
            Ok(exit::OK)
        }
        Command::Serve(a) => {
            let rt = runtime()?;
            renderer::cli::serve_metrics(&rt, a.nodes.metrics_listen, farm::describe_metrics)?;
            let read = |p: &PathBuf| {
                std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
            };
            let token = match a.users {
                Some(_) => None,
                None => pressrun_proto::transport::read_token(a.listen_token_file.as_deref())?,
            };
            let gate = match &a.users {
                Some(users) => {
                    let gate = dispatcher::principals::Gate::open(users, &a.state)?;
                    Some(gate)
                }
                None => None,
            };
            pressrun_proto::transport::check_exposure(
                a.listen,
                token.as_deref().or(gate.as_ref().map(|_| "users")),
                a.allow_unauthenticated,
            )
            .map_err(anyhow::Error::msg)?;
            let security = service::ServerSecurity {
                tls: match (&a.listen_tls_cert, &a.listen_tls_key) {
                    (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
                    _ => None,
                },
                token,
                gate,
            };
            let config = service::ServerConfig {
                nodes: a.nodes.nodes(a.threads)?,
                max_attempts: a.nodes.max_attempts,
                unavailable: Duration::from_secs(a.nodes.unavailable_seconds.max(1)),
                state: a.state.clone(),
                on_demand_threads: a.on_demand_threads,
                roots: roots::Roots::new(&a.data_roots, &a.template_roots, &a.out_roots)?,
                drain_after: Duration::from_secs(a.drain_after_seconds.max(1)),
            };
            rt.block_on(service::serve(a.listen, config, security))?;
            Ok(exit::OK)
        }
        Command::Submit(a) => {
            let abs = |p: &PathBuf| std::path::absolute(p).map(|p| p.display().to_string());
            let run_date = a.common.run_date();
            let spec = a.common.run_spec(run_date, "dispatcher serve");
            // --template names a folder when there is one at that path; otherwise it is a
            // template of the server's registry: NAME or NAME@VERSION.
            let (template_dir, template) = if a.common.template.is_dir() {
                (abs(&a.common.template)?, String::new())
            } else {
                let name = a.common.template.to_string_lossy().into_owned();
                if name.is_empty() || name.contains('/') {
                    anyhow::bail!(
                        "--template {name}: no such folder (a registry template is NAME or NAME@VERSION)"
                    );
                }
                (String::new(), name)
            };
            let req = SubmitRunRequest {
                template,
                production_profile: a
                    .common
                    .production
                    .as_ref()
                    .map(abs)
                    .transpose()?
                    .unwrap_or_default(),
                template_dir,
                data: abs(&spec.data)?,
                out: abs(&spec.out)?,
                params: Some((&spec.output).to_wire()),
                batch_records: spec.batch_records,
                limit: spec.limit,
                replace: spec.replace,
                window_shards: spec.window as u64,
                max_record_bytes: spec.max_record_bytes as u64,
                print: a.print,
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
        Command::Locate {
            out,
            piece,
            job,
            document,
            record,
        } => {
            use pressrun_engine::assemble::locate::{Query, locate};
            let query = match (piece, document, record) {
                (Some(piece), _, _) => Query::Piece { job, piece },
                (_, Some(d), _) => Query::Document(d),
                (_, _, Some(r)) => Query::Record(r),
                _ => unreachable!("clap requires one of them"),
            };
            let found = locate(&out, &query).map_err(anyhow::Error::msg)?;
            for l in &found {
                println!("{}", serde_json::to_string(l)?);
            }
            if found.is_empty() {
                eprintln!("not found in {}", out.display());
                return Ok(exit::FAILED);
            }
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
                Some(p) if p.state == RunState::Succeeded as i32 && p.records == 0 => {
                    exit::EMPTY_INPUT
                }
                Some(p)
                    if p.state == RunState::Succeeded as i32
                        && (p.rejected > 0 || p.unassembled > 0) =>
                {
                    exit::REJECTED
                }
                Some(p) if p.state == RunState::Succeeded as i32 => exit::OK,
                _ => exit::FAILED,
            })
        }
        Command::Run(a) => run(*a),
        Command::Print {
            conn,
            run,
            reprint_held,
        } => {
            let r = runtime()?.block_on(async {
                anyhow::Ok(
                    agents_client(&conn)
                        .await?
                        .print_run(pressrun_proto::v1::PrintRunRequest {
                            run_id: run,
                            reprint_held,
                        })
                        .await?
                        .into_inner(),
                )
            })?;
            println!(
                "{} print jobs handed to agents, {} waiting for a printer, {} queued or printed before; {} reprint jobs made, {} jobs' reprints held by the cap",
                r.jobs_queued, r.jobs_waiting, r.jobs_already, r.reprint_jobs, r.reprints_held
            );
            Ok(exit::OK)
        }
        Command::Template { conn, what } => template_command(&conn, what),
        Command::AccessLog { state, json } => {
            if !state.is_file() {
                anyhow::bail!("{}: no such run-state database", state.display());
            }
            for a in dispatcher::principals::access_log(&state)? {
                if json {
                    println!("{}", serde_json::to_string(&a)?);
                } else {
                    println!(
                        "{}  {:<8}  {:<16}  {:<10}  {}  {}",
                        a.at,
                        if a.allowed { "allowed" } else { "REFUSED" },
                        a.principal,
                        a.action,
                        a.target,
                        a.why
                    );
                }
            }
            Ok(exit::OK)
        }
        Command::Fleet { conn, json } => {
            let f = runtime()?.block_on(async {
                anyhow::Ok(
                    agents_client(&conn)
                        .await?
                        .fleet(pressrun_proto::v1::FleetRequest {})
                        .await?
                        .into_inner(),
                )
            })?;
            print_fleet(&f, json);
            Ok(exit::OK)
        }
    }
}

/// `dispatcher fleet`: one line per device, or one JSON object.
fn print_fleet(f: &pressrun_proto::v1::FleetResponse, json: bool) {
    let devices: Vec<serde_json::Value> = f
        .devices
        .iter()
        .map(|d| {
            let s = d.status.clone().unwrap_or_default();
            serde_json::json!({
                "agent": d.agent,
                "device": d.printer.as_ref().map_or(s.device.clone(), |p| p.name.clone()),
                "kind": d.kind,
                "attached": d.attached,
                "state": if s.state.is_empty() { "unknown".to_string() } else { s.state.clone() },
                "reasons": s.reasons,
                "supplies": s.supplies.iter().map(|x| serde_json::json!({"name": x.name, "level": x.level})).collect::<Vec<_>>(),
                "queued_jobs": s.queued_jobs,
                "queued_impressions": s.queued_impressions,
                "pages_per_hour": d.pages_per_hour,
                "duplex": d.printer.as_ref().map(|p| p.duplex),
                "inserter": d.printer.as_ref().map(|p| p.inserter.clone()),
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::json!({ "devices": devices }));
        return;
    }
    for d in &devices {
        println!(
            "{:<12} {:<9} {:<20} {:<12} queued {} jobs / {} impressions, {:.0} pages/h{}",
            d["agent"].as_str().unwrap_or(""),
            d["kind"].as_str().unwrap_or(""),
            d["device"].as_str().unwrap_or(""),
            if d["attached"].as_bool() == Some(true) {
                d["state"].as_str().unwrap_or("")
            } else {
                "detached"
            },
            d["queued_jobs"],
            d["queued_impressions"],
            d["pages_per_hour"].as_f64().unwrap_or(0.0),
            match d["reasons"].as_array() {
                Some(r) if !r.is_empty() => format!(
                    " ({})",
                    r.iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => String::new(),
            }
        );
    }
}

/// Who is at the keyboard: the operating-system user (principals with roles come with
/// the dispatcher's users file).
fn operator() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| format!("uid {}", unsafe_free_uid()))
}

fn unsafe_free_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid())
}

/// `dispatcher run`: one run in this process, on nodes or in-process threads.
fn run(a: FarmArgs) -> anyhow::Result<u8> {
    use pressrun_engine::run::{prepare, run_claimed};
    let rt = runtime()?;
    renderer::cli::serve_metrics(&rt, a.nodes.metrics_listen, farm::describe_metrics)?;
    let Some(template) = a.common.compile_template() else {
        return Ok(exit::TEMPLATE);
    };
    let template = Arc::new(template);
    let bundle = Arc::new(pressrun_engine::bundle::Bundle::from_dir(
        &a.common.template,
        a.common.fragments.as_deref(),
    )?);
    // The bundle the nodes get must be the template compiled here, byte for byte.
    if bundle.hash != hex::encode(template.content_hash) {
        anyhow::bail!(
            "the template folder changed while it was read: run the command again once it is stable"
        );
    }
    let profile = match a.common.load_profile() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Ok(exit::TEMPLATE);
        }
    };
    let mut spec = a.common.run_spec(a.common.run_date(), "dispatcher run");
    renderer::args::with_production(&mut spec, profile);
    spec.max_attempts = a.nodes.max_attempts;
    spec.unavailable = Duration::from_secs(a.nodes.unavailable_seconds.max(1));
    let nodes = a.nodes.nodes(a.common.threads)?;
    let backends = rt.block_on(farm::backends(&nodes, &template, &bundle))?;
    if !nodes.renderers.is_empty() && !rt.block_on(farm::any_reachable(&backends)) {
        anyhow::bail!(
            "no renderer node is reachable: start `renderer serve` on {}",
            nodes.renderers.join(", ")
        );
    }
    let claimed = match prepare(&template, &spec).and_then(|p| p.claim(&spec)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(renderer::cli::error_code(&e));
        }
    };
    let state = a
        .state
        .clone()
        .unwrap_or_else(|| claimed.out().join("run-state.sqlite"));
    let line = Arc::new(renderer::cli::ProgressLine::new(a.common.quiet));
    let shown = line.clone();
    let observer =
        farm::FarmObserver::new(Some(&state), Box::new(move |p: &Progress| shown.show(p)))?;
    let control = Arc::new(RunControl::default());
    renderer::cli::drain_on_signal(control.clone());
    let result = run_claimed(template, &spec, claimed, &backends, &control, &observer);
    line.finish();
    match result {
        Ok(report) => {
            if report.status == RunStatus::Succeeded
                && report.production.is_some()
                && let Err(e) = observer.register_print_jobs()
            {
                observer.finished(RunStatus::Failed);
                eprintln!(
                    "error: the print jobs are written but not in the ledger ({e:#}); \
                     enter them with `dispatcher enter-jobs --out OUT`"
                );
                return Ok(exit::FAILED);
            }
            observer.finished(report.status);
            renderer::cli::print_report(&report);
            if a.print && report.status == RunStatus::Succeeded {
                let conn = ClientArgs {
                    server: a.print_server.clone().unwrap_or_default(),
                    server_tls_ca: None,
                    server_tls_domain: None,
                    server_token_file: a.print_server_token_file.clone(),
                };
                let run_id = report.run_id.clone();
                let r = rt.block_on(async {
                    anyhow::Ok(
                        agents_client(&conn)
                            .await?
                            .print_run(pressrun_proto::v1::PrintRunRequest {
                                run_id,
                                reprint_held: false,
                            })
                            .await?
                            .into_inner(),
                    )
                });
                match r {
                    Ok(r) => println!(
                        "printing · {} print jobs handed to agents, {} waiting for a printer",
                        r.jobs_queued, r.jobs_waiting
                    ),
                    Err(e) => {
                        eprintln!(
                            "error: the run is composed but not printing ({e:#}); print it with `dispatcher print RUN --server ADDR`"
                        );
                        return Ok(exit::FAILED);
                    }
                }
            }
            Ok(renderer::cli::exit_code(&report))
        }
        Err(e) => {
            observer.finished(RunStatus::Failed);
            eprintln!("error: {e}");
            Ok(renderer::cli::error_code(&e))
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
