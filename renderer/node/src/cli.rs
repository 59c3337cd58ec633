//! What the `renderer` and `dispatcher` command lines share: exit codes, logging set-up,
//! the progress line of a run, and stopping a run gracefully on SIGINT/SIGTERM.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use pressrun_engine::run::{
    CommitRecord, Progress, RunControl, RunError, RunObserver, RunReport, RunStatus,
};

/// Exit codes: what a scheduler or an operator can act on.
pub mod exit {
    /// Every record became a document.
    pub const OK: u8 = 0;
    /// The run failed or was stopped (input unreadable, output unwritable, a shard failed
    /// on every attempt, stopped by a signal or cancelled: run the same command to resume).
    pub const FAILED: u8 = 1;
    /// Bad command line (clap's own code).
    pub const USAGE: u8 = 2;
    /// The run completed, but some records were rejected (see exceptions.jsonl).
    pub const REJECTED: u8 = 3;
    /// The template (or the production profile) does not compile.
    pub const TEMPLATE: u8 = 4;
    /// The input holds no records: nothing was produced.
    pub const EMPTY_INPUT: u8 = 5;
    /// The output folder was refused: in use by another run, or holding another or a
    /// finished run (see the message; `--replace` reuses it).
    pub const FOLDER_REFUSED: u8 = 6;
}

/// The long help's paragraph on exit codes, shared by both binaries.
pub const EXIT_CODES_HELP: &str = "Exit codes: 0 all records rendered; 1 run failed or stopped \
(run the same command again to resume); 2 bad command line; 3 completed with rejected records \
(see exceptions.jsonl, and jobs/unassembled.jsonl in print production); 4 template or production profile does not compile; 5 the input holds no records; 6 output folder \
refused (in use by another run, or holding another or a finished run: see --replace).";

/// The exit code of a run that returned.
pub fn exit_code(report: &RunReport) -> u8 {
    match report.status {
        RunStatus::Succeeded if report.summary.records == 0 => exit::EMPTY_INPUT,
        RunStatus::Succeeded
            if report.summary.rejected > 0
                || report
                    .production
                    .as_ref()
                    .is_some_and(|p| p.unassembled > 0) =>
        {
            exit::REJECTED
        }
        RunStatus::Succeeded => exit::OK,
        _ => exit::FAILED,
    }
}

/// The exit code of a run that could not go on.
pub fn error_code(e: &RunError) -> u8 {
    match e {
        RunError::Folder(_) => exit::FOLDER_REFUSED,
        _ => exit::FAILED,
    }
}

/// Prints what a run that returned did: the summary line on standard output, repairs and
/// why it is not a success on standard error.
pub fn print_report(report: &RunReport) {
    println!("{}", report.line());
    if let Some(p) = &report.production {
        println!(
            "print production · jobs {} · pieces {} · sheets {} · impressions {} · routed {} · duplicates {} (suppressed {}) · not assembled {}",
            p.jobs,
            p.pieces,
            p.sheets,
            p.impressions,
            p.routed,
            p.duplicates,
            p.suppressed,
            p.unassembled
        );
        for d in &p.repaired {
            eprintln!("repaired: {d}");
        }
    }
    for d in &report.repaired {
        eprintln!("repaired: {d}");
    }
    match report.status {
        RunStatus::Succeeded if report.summary.records == 0 => {
            eprintln!("error: the input holds no records: nothing was produced")
        }
        RunStatus::Stopped => eprintln!(
            "stopped by a signal: the shards in flight were committed; run the same command again to resume"
        ),
        RunStatus::Cancelled => {
            eprintln!("cancelled: committed shards stay; run the same command again to resume")
        }
        _ => {}
    }
}

/// Sets up `tracing` on standard error: `level` (or RUST_LOG), as text or JSON lines.
pub fn init_tracing(level: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The progress line of a run on a terminal (nothing when standard error is not one).
pub struct ProgressLine {
    bar: Option<indicatif::ProgressBar>,
}

impl ProgressLine {
    /// A progress line, unless `quiet` or standard error is not a terminal.
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self { bar }
    }

    /// Shows the run's progress.
    pub fn show(&self, p: &Progress) {
        if let Some(bar) = &self.bar {
            let shards = match p.shards_total {
                Some(t) => format!("shards {}/{t}", p.shards_committed),
                None => format!("shards {}", p.shards_committed),
            };
            bar.set_message(format!(
                "{shards} · records {} · documents {} · pages {} · rejected {}",
                p.records, p.documents, p.pages, p.rejected
            ));
        }
    }

    /// Clears the line.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl RunObserver for ProgressLine {
    fn committed(&self, _record: &CommitRecord, progress: &Progress) {
        self.show(progress);
    }
}

/// Drains `control` on the first SIGINT or SIGTERM (the shards in flight finish and
/// commit; the run stops resumably), from a thread of its own.
pub fn drain_on_signal(control: Arc<RunControl>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(pressrun_proto::transport::shutdown_signal());
        tracing::warn!("signal received: finishing the shards in flight, then stopping");
        control.drain();
    });
}

/// Bucket bounds (seconds) of every latency histogram.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Serves Prometheus metrics at `http://addr/metrics` (latencies as histograms), with the
/// help texts `describe` registers. Needs to run inside `rt`.
pub fn serve_metrics(
    rt: &tokio::runtime::Runtime,
    addr: Option<std::net::SocketAddr>,
    describe: fn(),
) -> anyhow::Result<()> {
    let Some(addr) = addr else {
        return Ok(());
    };
    let _guard = rt.enter();
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets(&LATENCY_BUCKETS)
        .map_err(|e| anyhow::anyhow!("invalid histogram buckets: {e}"))?
        .install()
        .map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))?;
    describe();
    tracing::info!(%addr, "metrics at http://{addr}/metrics");
    Ok(())
}
