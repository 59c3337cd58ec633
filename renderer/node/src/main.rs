//! The `renderer` binary: local runs on all cores, example data, template checks.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pressrun_engine::example_data::{self, Example, Vocabulary};
use pressrun_engine::run::{Backend, LocalBackend, RunControl, run};
use pressrun_engine::template::{CompileOptions, compile};
use renderer::args::RunArgs;
use renderer::cli::exit;
use renderer::node;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "renderer",
    version,
    about = "Pressrun composition: templates + customer records -> print-ready PDF",
    long_about = "Pressrun composition: compiles a versioned template once, then turns every record of a \
JSON Lines or CSV file into a paginated document, written as print files (batches of documents) \
and/or one tagged PDF per document, with a document index and an exceptions file.\n\n\
Every run owns its output folder: it locks it, refuses a folder that holds another or a finished \
run (unless --replace), commits each shard durably (fsynced) with a journal of what was written, and \
an interrupted run started again with the same arguments verifies what was committed and resumes.",
    after_long_help = renderer::cli::EXIT_CODES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log level filter (also RUST_LOG), e.g. `info`, `renderer=debug`.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    /// Write logs as JSON lines.
    #[arg(long, global = true)]
    log_json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Render every record of a data file locally, on all cores.
    Render(Box<RunArgs>),
    /// Write N deterministic example records (JSON Lines) to standard output.
    ExampleData {
        /// Which example template the records are for.
        #[arg(value_parser = clap::builder::TypedValueParser::map(
            clap::builder::PossibleValuesParser::new(Example::NAMES),
            |s| s.parse::<Example>().expect("a listed name")))]
        example: Example,
        /// Number of records.
        #[arg(long, default_value_t = 1000)]
        records: u64,
        /// Seed: the same seed gives the same records on every machine.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Words of names, streets, towns and transactions: `compact` (a few dozen, the
        /// default) or `realistic` (tens of thousands, as a real customer base has).
        #[arg(long, default_value = "compact", value_parser = clap::builder::TypedValueParser::map(
            clap::builder::PossibleValuesParser::new(Vocabulary::NAMES),
            |s| s.parse::<Vocabulary>().expect("a listed name")))]
        vocabulary: Vocabulary,
    },
    /// Serve the Renderer gRPC service (a stateless farm node) until SIGINT/SIGTERM.
    Serve {
        /// Address to listen on; port 0 picks a free port (the bound address is printed).
        #[arg(long, default_value = "127.0.0.1:50051")]
        listen: std::net::SocketAddr,
        /// Render threads (default: one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Seconds to drain in-flight shards after a shutdown signal.
        #[arg(long, default_value_t = 30)]
        drain_seconds: u64,
        /// Serve TLS with this PEM certificate chain (with --tls-key).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// File holding a bearer token every Renderer call must carry (the health service
        /// stays open for probes). Also read from PRESSRUN_TOKEN. An empty or blank token
        /// is an error. Without a token the node serves only on a loopback address.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Serve without a token on a non-loopback address (a trusted network only).
        #[arg(long)]
        allow_unauthenticated: bool,
        /// Serve Prometheus metrics at http://ADDR/metrics (shards rendered, cancelled and
        /// refused, shards in flight, shard latency histogram).
        #[arg(long)]
        metrics_listen: Option<std::net::SocketAddr>,
        /// Largest shard accepted, in bytes of records.
        #[arg(long, default_value_t = 2 << 30)]
        max_shard_bytes: u64,
        /// Also serve the gRPC health service alone, in plain text, on this address: for
        /// orchestrator probes that cannot speak TLS (Kubernetes gRPC probes).
        #[arg(long)]
        health_listen: Option<std::net::SocketAddr>,
    },
    /// Compile a template and report every problem with file, line and column.
    Check {
        /// Template folder.
        #[arg(long)]
        template: PathBuf,
        /// Fragment library folder (overrides the template's `fragments` setting).
        #[arg(long)]
        fragments: Option<PathBuf>,
    },
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

fn real_main(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::ExampleData {
            example,
            records,
            seed,
            vocabulary,
        } => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            match example_data::write_with(example, vocabulary, seed, records, &mut out) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other.context("cannot write example data")?,
            }
            Ok(exit::OK)
        }
        Command::Check {
            template,
            fragments,
        } => match compile(&template, &CompileOptions { fragments }) {
            Ok(c) => {
                for w in &c.warnings {
                    eprintln!("{w}");
                }
                println!(
                    "{} {} compiles ({} warnings); content hash {}",
                    c.template.id,
                    c.template.version,
                    c.warnings.len(),
                    hex::encode(c.template.content_hash)
                );
                Ok(exit::OK)
            }
            Err(diags) => {
                eprintln!("{diags}");
                Ok(exit::TEMPLATE)
            }
        },
        Command::Render(args) => render(*args),
        Command::Serve {
            listen,
            threads,
            drain_seconds,
            tls_cert,
            tls_key,
            token_file,
            allow_unauthenticated,
            metrics_listen,
            max_shard_bytes,
            health_listen,
        } => {
            let read = |p: &PathBuf| {
                std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
            };
            let tls = match (tls_cert, tls_key) {
                (Some(c), Some(k)) => Some((read(&c)?, read(&k)?)),
                _ => None,
            };
            let token = pressrun_proto::transport::read_token(token_file.as_deref())?;
            pressrun_proto::transport::check_exposure(
                listen,
                token.as_deref(),
                allow_unauthenticated,
            )
            .map_err(anyhow::Error::msg)?;
            let security = node::Security { tls, token };
            let threads = pressrun_engine::run::backend::threads_or_cores(threads);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            renderer::cli::serve_metrics(&rt, metrics_listen, node::describe_metrics)?;
            rt.block_on(node::serve(
                listen,
                threads,
                std::time::Duration::from_secs(drain_seconds),
                security,
                node::Limits { max_shard_bytes },
                health_listen,
            ))?;
            Ok(exit::OK)
        }
    }
}

fn render(args: RunArgs) -> anyhow::Result<u8> {
    let Some(template) = args.compile_template() else {
        return Ok(exit::TEMPLATE);
    };
    let profile = match args.load_profile() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Ok(exit::TEMPLATE);
        }
    };
    let template = Arc::new(template);
    let run_date = args.run_date();
    let mut spec = args.run_spec(run_date.clone(), "renderer render");
    renderer::args::with_production(&mut spec, profile);
    tracing::info!(template = %template.id, version = %template.version, run_date = %run_date, "run starts");
    let backends: Vec<Arc<dyn Backend>> =
        vec![Arc::new(LocalBackend::new(template.clone(), args.threads))];
    let control = Arc::new(RunControl::default());
    renderer::cli::drain_on_signal(control.clone());
    let line = renderer::cli::ProgressLine::new(args.quiet);
    let result = run(template, &spec, &backends, &control, &line);
    line.finish();
    match result {
        Ok(report) => {
            renderer::cli::print_report(&report);
            Ok(renderer::cli::exit_code(&report))
        }
        Err(e) => {
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
