//! Print-production planning at scale: facts of N example statements (realistic
//! vocabulary) under a production profile, then presort, householding, envelopes and job
//! cutting (`pressrun_engine::production::plan`). Page counts are the statements' own
//! estimate (one page per 25 transactions plus the first), since rendering a million
//! documents is the throughput benchmark's job; writing the print files is not measured.
//!
//! Like a bank's customer base, some customers hold more than one account: every tenth
//! statement goes to the customer of the statement before it (a household of two), and
//! every 500th is sent twice (the same customer and content: a duplicate).

use std::time::Instant;

use clap::Parser;
use pressrun_engine::example_data::{self, Example, Vocabulary};
use pressrun_engine::production::{DocTable, plan};

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
    let mut docs = DocTable::with_capacity(args.records as usize);
    let mut previous = serde_json::Value::Null;
    for i in 0..args.records {
        // One record at a time, as assembly reads the input: records are not kept.
        let t = Instant::now();
        let mut record = example_data::record_with(Example::Statement, Vocabulary::Realistic, 1, i);
        let mut content = i;
        if i % 500 == 499 {
            record = previous.clone();
            content = i - 1;
        } else if i % 10 == 1 {
            record["customer"] = previous["customer"].clone();
        }
        generating += t.elapsed();
        let tx = record["transactions"].as_array().map_or(0, Vec::len) as u32;
        let facts = profile
            .facts(&record)
            .expect("facts of an example statement");
        docs.push(i + 1, &format!("{content:064x}"), 1 + tx / 25, &facts)
            .expect("fewer than 2^32 documents");
        previous = record;
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
    let suppressed = p.duplicates.iter().filter(|d| d.suppressed).count();
    println!(
        "{{\"documents\":{},\"jobs\":{},\"pieces\":{pieces},\"householded_pieces\":{householded},\"duplicates\":{},\"suppressed\":{suppressed},\"generate_seconds\":{:.2},\"facts_seconds\":{:.2},\"plan_seconds\":{:.2},\"peak_rss_mib\":{:.1}}}",
        args.records,
        p.jobs.len(),
        p.duplicates.len(),
        generating.as_secs_f64(),
        facts.as_secs_f64(),
        (total - facts).as_secs_f64(),
        pressrun_benches::peak_rss_kib().unwrap_or(0) as f64 / 1024.0,
    );
}
