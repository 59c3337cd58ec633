//! Print-production planning at scale: facts of N example statements (realistic
//! vocabulary) under a production profile, then presort, householding, envelopes and job
//! cutting (`pressrun_engine::production::plan`). Page counts are the statements' own
//! estimate (one page per 25 transactions plus the first), since rendering a million
//! documents is the throughput benchmark's job; writing the print files is not measured.

use std::time::Instant;

use clap::Parser;
use pressrun_engine::example_data::{self, Example, Vocabulary};
use pressrun_engine::production::{DocFacts, plan};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Planning time and peak RSS for N documents under a production profile")]
struct Args {
    /// Documents.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// The production profile.
    #[arg(long)]
    profile: std::path::PathBuf,
}

fn main() {
    let args = Args::parse();
    let profile = pressrun_benches::profile(&args.profile);
    let started = Instant::now();
    let mut generating = std::time::Duration::ZERO;
    let mut docs = Vec::with_capacity(args.records as usize);
    for i in 0..args.records {
        // One record at a time, as assembly reads the input: records are not kept.
        let t = Instant::now();
        let record = example_data::record_with(Example::Statement, Vocabulary::Realistic, 1, i);
        generating += t.elapsed();
        let tx = record["transactions"].as_array().map_or(0, Vec::len) as u32;
        docs.push(DocFacts {
            record: i + 1,
            // The planner does not read it; assembly keeps the ids in its own index.
            document_id: String::new(),
            sha256: format!("{:064x}", i),
            pages: 1 + tx / 25,
            facts: profile
                .facts(&record)
                .expect("facts of an example statement"),
        });
    }
    let facts = started.elapsed() - generating;
    let p = plan(&profile, &docs);
    let total = started.elapsed() - generating;
    let pieces: usize = p.jobs.iter().map(|j| j.pieces.len()).sum();
    let householded = p
        .jobs
        .iter()
        .flat_map(|j| &j.pieces)
        .filter(|x| x.householded)
        .count();
    println!(
        "{{\"documents\":{},\"jobs\":{},\"pieces\":{pieces},\"householded_pieces\":{householded},\"duplicates\":{},\"generate_seconds\":{:.2},\"facts_seconds\":{:.2},\"plan_seconds\":{:.2},\"peak_rss_mib\":{:.1}}}",
        args.records,
        p.jobs.len(),
        p.duplicates.len(),
        generating.as_secs_f64(),
        facts.as_secs_f64(),
        (total - facts).as_secs_f64(),
        pressrun_benches::peak_rss_kib().unwrap_or(0) as f64 / 1024.0,
    );
}
