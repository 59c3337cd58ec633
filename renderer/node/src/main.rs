//! The `renderer` binary: local runs on all cores, example data, template checks.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pressrun_engine::example_data::{self, Example, Vocabulary};
use pressrun_engine::run::run;
use pressrun_engine::template::{CompileOptions, compile};
use renderer::args::RunArgs;
use renderer::node;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes: what a scheduler or an operator can act on.
mod exit {
    /// Every record became a document.
    pub const OK: u8 = 0;
    /// The run failed (input unreadable, output unwritable, internal error).
    pub const FAILED: u8 = 1;
    /// Bad command line (clap's own code).
    #[expect(dead_code, reason = "documents clap's code")]
    pub const USAGE: u8 = 2;
    /// The run completed, but some records were rejected (see exceptions.jsonl).
    pub const REJECTED: u8 = 3;
    /// The template does not compile.
    pub const TEMPLATE: u8 = 4;
}

#[derive(Parser)]
#[command(
    name = "renderer",
    version,
    about = "Pressrun composition: templates + customer records -> print-ready PDF",
    long_about = "Pressrun composition: compiles a versioned template once, then turns every record of a \
JSON Lines or CSV file into a paginated document, written as print files (batches of documents) \
and/or one tagged PDF per document, with a document index and an exceptions file.\n\n\
Exit codes: 0 all records rendered; 1 run failed; 2 bad command line; 3 completed with rejected \
records (see exceptions.jsonl); 4 template does not compile."
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
        /// stays open for probes). Also read from PRESSRUN_TOKEN.
        #[arg(long)]
        token_file: Option<PathBuf>,
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
    init_tracing(&cli.log, cli.log_json);
    match real_main(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::FAILED)
        }
    }
}

fn init_tracing(level: &str, json: bool) {
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
        } => {
            let read = |p: &PathBuf| {
                std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
            };
            let tls = match (tls_cert, tls_key) {
                (Some(c), Some(k)) => Some((read(&c)?, read(&k)?)),
                _ => None,
            };
            let token = match token_file {
                Some(f) => Some(
                    String::from_utf8(read(&f)?)
                        .context("the token file is not UTF-8")?
                        .trim()
                        .to_string(),
                ),
                None => std::env::var("PRESSRUN_TOKEN").ok(),
            };
            let security = node::Security { tls, token };
            let threads = if threads == 0 {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            } else {
                threads
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(node::serve(
                listen,
                threads,
                std::time::Duration::from_secs(drain_seconds),
                security,
            ))?;
            Ok(exit::OK)
        }
    }
}

fn render(args: RunArgs) -> anyhow::Result<u8> {
    let compiled = match compile(
        &args.template,
        &CompileOptions {
            fragments: args.fragments.clone(),
        },
    ) {
        Ok(c) => c,
        Err(diags) => {
            eprintln!("{diags}");
            return Ok(exit::TEMPLATE);
        }
    };
    for w in &compiled.warnings {
        eprintln!("{w}");
    }
    let template = Arc::new(compiled.template);
    let run_date = args.run_date();
    let opts = args.run_options(run_date.clone());
    tracing::info!(template = %template.id, version = %template.version, run_date = %run_date, "run starts");
    let bar = (!args.quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    });
    let report = |p: pressrun_engine::run::Progress| {
        if let Some(bar) = &bar {
            bar.set_message(format!(
                "records {} · documents {} · pages {} · rejected {}",
                p.records, p.documents, p.pages, p.rejected
            ));
        }
    };
    let summary = run(template.clone(), &opts, &report)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = serde_json::json!({
        "template": { "id": template.id, "version": template.version, "content_hash": hex::encode(template.content_hash) },
        "run_date": run_date,
        "summary": summary,
        "elapsed_seconds": summary.elapsed.as_secs_f64(),
    });
    std::fs::write(
        args.out.join("summary.json"),
        serde_json::to_vec_pretty(&report)?,
    )
    .context("cannot write summary.json")?;
    println!("{}", summary.line());
    Ok(if summary.rejected > 0 {
        exit::REJECTED
    } else {
        exit::OK
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
