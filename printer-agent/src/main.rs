//! The `printer-agent` binary. Built so far: `simulate-inserter` over TCP. Not yet:
//! `serve` (IPP, SNMP and the inserter drivers towards the dispatcher) and the
//! simulator on a serial line.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use printer_agent::pil::inserter::{Fault, Inserter};
use printer_agent::pil::line::LineSplitter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser)]
#[command(
    name = "printer-agent",
    about = "Pressrun printer agent: drives printers and inserters (so far: an inserter simulator)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The inserter side of PIL/1, with fault injection, for tests and demos.
    ///
    /// Listens on ADDR (port 0: any free port) and prints `listening on HOST:PORT`;
    /// serves one host at a time and keeps its state across connections, so a host that
    /// reconnects can HELLO and RESEND. After START it feeds one piece every
    /// `--piece-ms` and re-sends unacknowledged events every 2 s.
    SimulateInserter {
        /// Address to listen on, e.g. 127.0.0.1:0.
        #[arg(long)]
        tcp: String,
        /// A fault for one piece: PIECE=KIND, KIND one of divert:REASON, jam, pulled,
        /// lost-report, duplicate-report, garbage, unreported. Repeatable.
        #[arg(long = "fault", value_name = "PIECE=KIND")]
        faults: Vec<String>,
        /// Drop the connection after this many pieces; the next piece's report is lost
        /// with it (the host must HELLO and RESEND).
        #[arg(long)]
        disconnect_after: Option<u32>,
        /// Milliseconds between pieces.
        #[arg(long, default_value_t = 50)]
        piece_ms: u64,
        /// Model reported in HELLO.
        #[arg(long, default_value = "PR-SIM-1")]
        device: String,
        /// Serial number reported in HELLO.
        #[arg(long, default_value = "SIM0001")]
        serial: String,
    },
    /// Not built yet: connect to the dispatcher and drive the devices of agent.toml.
    Serve,
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

async fn send(w: &mut tokio::net::tcp::OwnedWriteHalf, lines: Vec<String>) -> std::io::Result<()> {
    for l in lines {
        w.write_all(l.as_bytes()).await?;
        w.write_all(b"\r\n").await?;
    }
    Ok(())
}

async fn simulate(
    addr: &str,
    mut ins: Inserter,
    mut disconnect_after: Option<u32>,
    piece_ms: u64,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    println!("listening on {}", listener.local_addr()?);
    let mut fed = 0u32;
    loop {
        let (sock, _) = listener.accept().await?;
        let (mut rd, mut wr) = sock.into_split();
        let mut splitter = LineSplitter::default();
        let mut buf = [0u8; 4096];
        let mut pieces = tokio::time::interval(Duration::from_millis(piece_ms.max(1)));
        let mut retransmit = tokio::time::interval(Duration::from_secs(2));
        retransmit.tick().await;
        loop {
            let out = tokio::select! {
                n = rd.read(&mut buf) => match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => splitter.push(&buf[..n]).iter().flat_map(|l| ins.handle(l)).collect(),
                },
                _ = pieces.tick() => {
                    let out = ins.run_next();
                    if !out.is_empty() {
                        fed += 1;
                    }
                    if !out.is_empty() && disconnect_after == Some(fed) {
                        // The lines of this piece are lost with the connection.
                        disconnect_after = None;
                        break;
                    }
                    out
                }
                _ = retransmit.tick() => ins.retransmit(),
            };
            if send(&mut wr, out).await.is_err() {
                break;
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::SimulateInserter {
            tcp,
            faults,
            disconnect_after,
            piece_ms,
            device,
            serial,
        } => {
            let faults: BTreeMap<String, Fault> = faults
                .iter()
                .map(|f| parse_fault(f))
                .collect::<Result<_, _>>()?;
            let ins = Inserter::new(&device, &serial, faults);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(simulate(&tcp, ins, disconnect_after, piece_ms))
        }
        Command::Serve => {
            eprintln!("printer-agent serve: not built yet (the printer-agent issue is open)");
            std::process::exit(2);
        }
    }
}
