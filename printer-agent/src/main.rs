//! The `printer-agent` binary: `serve` (the devices of agent.toml for a dispatcher),
//! `check` (agent.toml) and `simulate-inserter` over TCP or a serial line.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use printer_agent::pil::inserter::{Fault, Inserter};
use printer_agent::pil::line::LineSplitter;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[derive(Parser)]
#[command(
    name = "printer-agent",
    about = "Pressrun printer agent: drives IPP printers and PIL/1 inserters for a dispatcher"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The inserter side of PIL/1, with fault injection, for tests and demos.
    ///
    /// With --tcp it listens on ADDR (port 0: any free port) and prints `listening on
    /// HOST:PORT`; it serves one host at a time and keeps its state across connections,
    /// so a host that reconnects can HELLO and RESEND. With --tty it opens a serial port
    /// (8N1 at --baud) and prints `open on PATH`; when the line goes (cable pulled) it
    /// keeps its state and opens the port again once it is back. After START it feeds one piece every
    /// `--piece-ms` and re-sends unacknowledged events every 2 s.
    SimulateInserter {
        /// Address to listen on, e.g. 127.0.0.1:0.
        #[arg(long, conflicts_with = "tty", required_unless_present = "tty")]
        tcp: Option<String>,
        /// Serial port to speak on, e.g. /dev/ttyUSB0 or one end of a socat pty pair.
        #[arg(long)]
        tty: Option<String>,
        /// Baud rate of --tty.
        #[arg(long, default_value_t = 9600)]
        baud: u32,
        /// A fault for one piece: PIECE=KIND, KIND one of divert:REASON, jam, pulled,
        /// lost-report, duplicate-report, garbage, unreported. Repeatable.
        #[arg(long = "fault", value_name = "PIECE=KIND")]
        faults: Vec<String>,
        /// Drop the connection after this many pieces; the next piece's report is lost
        /// with it (the host must HELLO and RESEND). TCP only.
        #[arg(long, conflicts_with = "tty")]
        disconnect_after: Option<u32>,
        /// Milliseconds between pieces.
        #[arg(long, default_value_t = 50)]
        piece_ms: u64,
        /// Feed a piece only once the printer has put out its sheets: PATH is the test
        /// printer's ground-truth log (`job=ID impression=K of=N` per impression, see
        /// tests/peers/ipp-print-command); the k-th job started here is the k-th printer
        /// job in the log. Without it, pieces are fed as fast as --piece-ms.
        #[arg(long)]
        follow_log: Option<std::path::PathBuf>,
        /// Impressions per sheet in --follow-log (2 for duplex, 1 for simplex).
        #[arg(long, default_value_t = 2)]
        impressions_per_sheet: u32,
        /// With --follow-log: a job whose next sheets have not come for this long, once
        /// the printer has started it, is ended (`JOBEND`, the rest unreported), as an
        /// inserter whose feed ran dry. A job the printer has not started (it holds it:
        /// media empty) is waited for; the log cannot tell a job aborted before its
        /// first impression from a held one, so the simulator cannot follow that case.
        #[arg(long, default_value_t = 2000)]
        idle_end_ms: u64,
        /// Model reported in HELLO.
        #[arg(long, default_value = "PR-SIM-1")]
        device: String,
        /// Serial number reported in HELLO.
        #[arg(long, default_value = "SIM0001")]
        serial: String,
    },
    /// Read and check an agent.toml (every rule of docs/agent.md) and list its devices;
    /// exit 1 with the file, the key and what is wrong.
    Check {
        /// The agent's configuration file.
        #[arg(long)]
        config: std::path::PathBuf,
    },
    /// Drive the printers and inserters of agent.toml for a dispatcher.
    ///
    /// Attaches to the dispatcher's PrintAgents service (again and again if the session
    /// breaks), announces the devices, takes print jobs (verified by size and SHA-256,
    /// fsynced, held in STATE_DIR), prints them one at a time per printer over IPP,
    /// declares each job to the inserter that follows the printer and reports every
    /// impression count, job end and piece outcome. Every event is on disk before it is
    /// acknowledged to a device and kept until the dispatcher acknowledges it: an agent
    /// killed and started again goes on from its store.
    Serve(Box<ServeArgs>),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The dispatcher's address, host:port (`dispatcher serve --listen`).
    #[arg(long)]
    dispatcher: String,
    /// The agent's configuration file.
    #[arg(long)]
    config: std::path::PathBuf,
    /// Talk TLS to the dispatcher, trusting this PEM CA certificate.
    #[arg(long)]
    dispatcher_tls_ca: Option<std::path::PathBuf>,
    /// Name the dispatcher's certificate carries (default: the host of --dispatcher).
    #[arg(long, requires = "dispatcher_tls_ca")]
    dispatcher_tls_domain: Option<String>,
    /// File holding the dispatcher's bearer token. Also read from PRESSRUN_TOKEN.
    #[arg(long)]
    token_file: Option<std::path::PathBuf>,
    /// Seconds between two Get-Job-Attributes of a job being printed.
    #[arg(long, default_value_t = 1.0)]
    poll_seconds: f64,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Serve gRPC health (grpc.health.v1) on this address.
    #[arg(long)]
    health_listen: Option<std::net::SocketAddr>,
    /// Log level filter (also RUST_LOG).
    #[arg(long, default_value = "info")]
    log: String,
    /// Write logs as JSON lines.
    #[arg(long)]
    log_json: bool,
}

fn serve(a: ServeArgs) -> anyhow::Result<()> {
    use printer_agent::ipp::driver::Pacing;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&a.log));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if a.log_json {
        fmt.json().init();
    } else {
        fmt.init();
    }
    let config = printer_agent::config::Config::load(&a.config)?;
    let tls_ca = a
        .dispatcher_tls_ca
        .as_ref()
        .map(|p| std::fs::read(p).with_context(|| format!("cannot read {}", p.display())))
        .transpose()?;
    let token = pressrun_proto::transport::read_token(a.token_file.as_deref())?;
    let poll = std::time::Duration::from_secs_f64(a.poll_seconds.clamp(0.05, 30.0));
    let options = printer_agent::serve::Options {
        dispatcher: printer_agent::link::Dispatcher {
            address: a.dispatcher.clone(),
            tls_ca,
            tls_domain: a.dispatcher_tls_domain.clone(),
            token,
        },
        pacing: Pacing {
            poll,
            ..Pacing::default()
        },
        printer_poll: poll.max(std::time::Duration::from_secs(2)),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        if let Some(addr) = a.metrics_listen {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .with_http_listener(addr)
                .install()
                .with_context(|| format!("cannot serve metrics on {addr}"))?;
            describe_metrics();
        }
        if let Some(addr) = a.health_listen {
            let (reporter, health) = tonic_health::server::health_reporter();
            reporter
                .set_service_status("", tonic_health::ServingStatus::Serving)
                .await;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot serve health on {addr}"))?;
            println!("health on {}", listener.local_addr()?);
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(health)
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
            );
        }
        println!(
            "agent {} serving {} printers, {} inserters",
            config.agent.name,
            config.printers.len(),
            config.inserters.len()
        );
        use std::io::Write;
        std::io::stdout().flush()?;
        printer_agent::serve::serve(config, options).await?;
        anyhow::Ok(())
    })
}

/// HELP texts of the agent's metrics.
fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(
        "pressrun_agent_impressions_total",
        "Impressions confirmed by the printer's job-impressions-completed"
    );
    describe_counter!(
        "pressrun_agent_jobs_ended_total",
        "Print jobs the printer finished with, by how (completed, aborted, canceled, unknown)"
    );
    describe_gauge!(
        "pressrun_agent_printer_up",
        "1 while the printer answers and is not stopped"
    );
    describe_counter!(
        "pressrun_agent_pieces_total",
        "Inserter piece reports recorded, by outcome"
    );
    describe_counter!(
        "pressrun_agent_garbage_lines_total",
        "Lines from an inserter that are not PIL/1, ignored"
    );
    describe_counter!(
        "pressrun_agent_inserter_connects_total",
        "Times the inserter line was opened"
    );
    describe_counter!(
        "pressrun_agent_snmp_failures_total",
        "SNMP polls that failed, status watch and job witness alike (a witness poll that fails leaves that job without a second witness)"
    );
    describe_gauge!(
        "pressrun_agent_snmp_up",
        "1 while the printer's SNMP agent answers the status poll"
    );
    describe_counter!(
        "pressrun_agent_device_alerts_total",
        "Times a condition appeared on a device, by device and reason: printer-state-reasons (media-jam, media-empty, cover-open, ...), SNMP conditions and critical alerts (snmp:jammed, snmp:offline, snmp:unreachable, ...), inserter STATE reasons; free-text reasons count under the state's name"
    );
    describe_counter!(
        "pressrun_agent_device_state_changes_total",
        "Device state changes, by device and new state (idle, processing, stopped, unreachable, ...)"
    );
    describe_counter!(
        "pressrun_agent_witness_disagreements_total",
        "Jobs whose SNMP life-count delta disagreed with IPP's impressions"
    );
    describe_counter!(
        "pressrun_agent_sessions_total",
        "Sessions opened with the dispatcher"
    );
    describe_counter!(
        "pressrun_agent_event_batches_sent_total",
        "Event batches sent to the dispatcher (a batch sent again after a reconnect counts again)"
    );
    describe_gauge!(
        "pressrun_agent_outbox_batches",
        "Event batches on the agent's disk not yet acknowledged by the dispatcher"
    );
}

fn parse_fault(s: &str) -> anyhow::Result<(String, Fault)> {
    let (piece, kind) = s
        .split_once('=')
        .with_context(|| format!("--fault {s}: expected PIECE=KIND"))?;
    if piece.len() < 6 || !piece.bytes().all(|b| b.is_ascii_digit()) {
        bail!("--fault {s}: {piece:?} is not a piece id of 6 or more digits");
    }
    let fault = match kind {
        "jam" => Fault::Jam,
        "pulled" => Fault::Pulled,
        "lost-report" => Fault::LostReport,
        "duplicate-report" => Fault::DuplicateReport,
        "garbage" => Fault::Garbage,
        "unreported" => Fault::Unreported,
        k => match k.strip_prefix("divert:") {
            Some(reason) if !reason.is_empty() && !reason.contains(' ') => {
                Fault::Divert(reason.to_string())
            }
            _ => bail!(
                "--fault {s}: {kind:?} is not one of divert:REASON, jam, pulled, lost-report, duplicate-report, garbage, unreported"
            ),
        },
    };
    Ok((piece.to_string(), fault))
}

async fn send<W: AsyncWrite + Unpin>(w: &mut W, lines: Vec<String>) -> std::io::Result<()> {
    for l in lines {
        w.write_all(l.as_bytes()).await?;
        w.write_all(b"\r\n").await?;
    }
    w.flush().await
}

/// What the simulator keeps across connections.
struct Sim {
    ins: Inserter,
    disconnect_after: Option<u32>,
    piece_ms: u64,
    fed: u32,
    follow: Option<Follow>,
}

/// Pacing the feed by the printer's ground-truth log.
struct Follow {
    log: std::path::PathBuf,
    per_sheet: u64,
    idle_end: Duration,
    /// Jobs started so far (the current one is the last).
    started: usize,
    /// The job running when last looked, to see a new one start.
    running: Option<String>,
    /// Sheets of the current job fed.
    fed_sheets: u64,
    last_progress: std::time::Instant,
}

impl Follow {
    /// Impressions the printer put out for its `k`-th job (0-based, in log order).
    fn printed(&self, k: usize) -> u64 {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut order: Vec<&str> = Vec::new();
        let mut max: BTreeMap<&str, u64> = BTreeMap::new();
        for line in text.lines() {
            let mut job = None;
            let mut imp = None;
            for w in line.split(' ') {
                if let Some(v) = w.strip_prefix("job=") {
                    job = Some(v);
                } else if let Some(v) = w.strip_prefix("impression=") {
                    imp = v.parse::<u64>().ok();
                }
            }
            if let (Some(j), Some(i)) = (job, imp) {
                if !max.contains_key(j) {
                    order.push(j);
                }
                let m = max.entry(j).or_insert(0);
                *m = (*m).max(i);
            }
        }
        order.get(k).and_then(|j| max.get(j)).copied().unwrap_or(0)
    }
}

impl Sim {
    /// The next piece's lines, if it can be fed now.
    fn feed(&mut self) -> Vec<String> {
        let Some(f) = self.follow.as_mut() else {
            return self.ins.run_next();
        };
        let running = self.ins.running_job().map(str::to_string);
        if running.is_some() && running != f.running {
            f.started += 1;
            f.fed_sheets = 0;
            f.last_progress = std::time::Instant::now();
        }
        f.running = running.clone();
        if running.is_none() {
            return Vec::new();
        }
        let Some(sheets) = self.ins.next_sheets() else {
            return self.ins.run_next();
        };
        let need = (f.fed_sheets + u64::from(sheets)) * f.per_sheet;
        let printed = f.printed(f.started - 1);
        if printed == 0 {
            f.last_progress = std::time::Instant::now();
        }
        if printed >= need {
            f.fed_sheets += u64::from(sheets);
            f.last_progress = std::time::Instant::now();
            return self.ins.run_next();
        }
        if f.last_progress.elapsed() > f.idle_end {
            return self.ins.end_now();
        }
        Vec::new()
    }

    /// Speaks PIL/1 on one connection until the peer goes or the fault drops it.
    async fn converse<R, W>(&mut self, mut rd: R, mut wr: W)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut splitter = LineSplitter::default();
        let mut buf = [0u8; 4096];
        let mut pieces = tokio::time::interval(Duration::from_millis(self.piece_ms.max(1)));
        let mut retransmit = tokio::time::interval(Duration::from_secs(2));
        retransmit.tick().await;
        loop {
            let out = tokio::select! {
                n = rd.read(&mut buf) => match n {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        let lines = splitter.push(&buf[..n]);
                        lines.iter().flat_map(|l| self.ins.handle(l)).collect()
                    }
                },
                _ = pieces.tick() => {
                    let out = self.feed();
                    if !out.is_empty() {
                        self.fed += 1;
                        if self.disconnect_after == Some(self.fed) {
                            // The lines of this piece are lost with the connection.
                            self.disconnect_after = None;
                            return;
                        }
                    }
                    out
                }
                _ = retransmit.tick() => self.ins.retransmit(),
            };
            if send(&mut wr, out).await.is_err() {
                return;
            }
        }
    }
}

async fn simulate_tcp(addr: &str, mut sim: Sim) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (sock, _) = listener.accept().await?;
        let (rd, wr) = sock.into_split();
        sim.converse(rd, wr).await;
    }
}

/// Opens the serial port 8N1, its stale input cleared.
fn open_tty(path: &str, baud: u32) -> anyhow::Result<tokio_serial::SerialStream> {
    use tokio_serial::{SerialPort, SerialPortBuilderExt};
    let port = tokio_serial::new(path, baud)
        .data_bits(tokio_serial::DataBits::Eight)
        .parity(tokio_serial::Parity::None)
        .stop_bits(tokio_serial::StopBits::One)
        .open_native_async()
        .with_context(|| format!("cannot open serial port {path}"))?;
    // Bytes written before the port was opened are stale.
    port.clear(tokio_serial::ClearBuffer::Input)
        .with_context(|| format!("cannot clear the input of {path}"))?;
    Ok(port)
}

/// Speaks on the serial port; when the line goes (the cable pulled, the pty pair gone)
/// it keeps its state, opens the port again as soon as it is back (every 200 ms) and
/// goes on, as an inserter does, so the host can HELLO and RESEND.
async fn simulate_tty(path: &str, baud: u32, mut sim: Sim) -> anyhow::Result<()> {
    let mut port = open_tty(path, baud)?;
    println!("open on {path}");
    loop {
        let (rd, wr) = tokio::io::split(port);
        sim.converse(rd, wr).await;
        eprintln!("{path}: the line closed; opening it again when it is back");
        port = loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Ok(p) = open_tty(path, baud) {
                eprintln!("{path}: open again");
                break p;
            }
        };
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => {
            let c = match printer_agent::config::Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::exit(1);
                }
            };
            println!(
                "agent {}: state in {}",
                c.agent.name,
                c.agent.state_dir.display()
            );
            for p in &c.printers {
                let snmp = p.snmp.as_ref().map_or("no SNMP".to_string(), |s| {
                    let v = match s.version {
                        printer_agent::config::SnmpVersion::V2c => "2c",
                        printer_agent::config::SnmpVersion::V3 => "3",
                    };
                    format!("SNMPv{v} at {}", s.address)
                });
                println!(
                    "printer {}: {} ({}, {}), {snmp}, then {}",
                    p.name,
                    p.uri,
                    if p.duplex { "duplex" } else { "simplex" },
                    if p.colour { "colour" } else { "mono" },
                    p.inserter.as_deref().unwrap_or("no inserter")
                );
            }
            for i in &c.inserters {
                match i.link() {
                    printer_agent::config::Link::Tty { path, baud } => {
                        println!(
                            "inserter {}: serial {} at {baud} baud, 8N1",
                            i.name,
                            path.display()
                        )
                    }
                    printer_agent::config::Link::Tcp(a) => println!("inserter {}: tcp {a}", i.name),
                }
            }
            Ok(())
        }
        Command::SimulateInserter {
            tcp,
            tty,
            baud,
            faults,
            disconnect_after,
            piece_ms,
            follow_log,
            impressions_per_sheet,
            idle_end_ms,
            device,
            serial,
        } => {
            let faults: BTreeMap<String, Fault> = faults
                .iter()
                .map(|f| parse_fault(f))
                .collect::<Result<_, _>>()?;
            let sim = Sim {
                ins: Inserter::new(&device, &serial, faults),
                disconnect_after,
                piece_ms,
                fed: 0,
                follow: follow_log.map(|log| Follow {
                    log,
                    per_sheet: u64::from(impressions_per_sheet.max(1)),
                    idle_end: Duration::from_millis(idle_end_ms),
                    started: 0,
                    running: None,
                    fed_sheets: 0,
                    last_progress: std::time::Instant::now(),
                }),
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            match (tcp, tty) {
                (Some(addr), _) => rt.block_on(simulate_tcp(&addr, sim)),
                (None, Some(path)) => rt.block_on(simulate_tty(&path, baud, sim)),
                (None, None) => bail!("give --tcp ADDR or --tty PATH"),
            }
        }
        Command::Serve(a) => serve(*a),
    }
}
