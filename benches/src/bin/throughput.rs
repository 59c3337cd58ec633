//! End-to-end throughput: the example statement run through the real run pipeline
//! (read JSONL from disk → parse → bind → layout → PDF → print files on disk).
//!
//! Pin it to one core for the per-core figure: `taskset -c 0 throughput --threads 1`.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use pressrun_engine::example_data::{self, Example, Vocabulary};
use pressrun_engine::run::shard::OutputParams;
use pressrun_engine::run::{Backend, LocalBackend, RunControl, RunSpec, run};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "End-to-end statement throughput (pages per second, peak RSS)")]
struct Args {
    /// Statement records to render (about 2.5 pages each).
    #[arg(long, default_value_t = 40_000)]
    records: u64,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Also write one tagged PDF per document.
    #[arg(long)]
    per_document: bool,
    /// Tag the print files.
    #[arg(long)]
    tagged: bool,
    /// Output folder (default: a temporary folder, removed afterwards).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// Words of the generated statements: `compact` (a few dozen; nearly every word hits
    /// the shaped-word cache) or `realistic` (tens of thousands of names, streets, towns
    /// and merchants).
    #[arg(long, default_value = "compact", value_parser = clap::builder::TypedValueParser::map(
        clap::builder::PossibleValuesParser::new(Vocabulary::NAMES),
        |s| s.parse::<Vocabulary>().expect("a listed name")))]
    vocabulary: Vocabulary,
    /// Print production with this profile: shards spool, then print jobs are assembled.
    #[arg(long)]
    production: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tmp = tempfile::tempdir()?;
    let out = args.out.clone().unwrap_or_else(|| tmp.path().join("out"));
    let data = tmp.path().join("statements.jsonl");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&data)?);
        example_data::write_with(Example::Statement, args.vocabulary, 1, args.records, &mut f)?;
    }
    let template = Arc::new(pressrun_benches::example_template("statement"));
    let mut opts = RunSpec {
        data,
        out,
        output: OutputParams {
            per_document: args.per_document,
            tagged_print: args.tagged,
            run_date: "2026-11-23".into(),
            ..OutputParams::default()
        },
        assemble_threads: args.threads,
        ..RunSpec::default()
    };
    if let Some(p) = &args.production {
        let profile = pressrun_benches::profile(p);
        opts.output.spool = true;
        opts.output.duplex = profile.duplex;
        opts.production = Some(Arc::new(profile));
    }
    let backends: Vec<Arc<dyn Backend>> =
        vec![Arc::new(LocalBackend::new(template.clone(), args.threads))];
    let report = run(
        template,
        &opts,
        &backends,
        &RunControl::default(),
        &pressrun_engine::run::OnProgress(|_: &_| {}),
    )
    .context("run failed")?;
    let summary = &report.summary;
    println!("{}", report.line());
    println!(
        "{{\"records\":{},\"pages\":{},\"seconds\":{:.3},\"pages_per_second\":{:.0},\"peak_rss_mib\":{:.1},\"cpu_seconds\":{:.1},\"jobs\":{},\"threads\":{},\"tagged\":{},\"per_document\":{},\"vocabulary\":\"{}\"}}",
        summary.records,
        summary.pages,
        report.elapsed.as_secs_f64(),
        report.pages_per_second(),
        pressrun_benches::peak_rss_kib().unwrap_or(0) as f64 / 1024.0,
        pressrun_benches::cpu_seconds().unwrap_or(0.0),
        report.production.as_ref().map_or(0, |p| p.jobs),
        args.threads,
        args.tagged,
        args.per_document,
        args.vocabulary.name()
    );
    Ok(())
}
