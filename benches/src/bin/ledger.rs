//! The ledger under production load: a run of print jobs entered as assembled, then the
//! events a printer agent sends — each job sent, impression counts polled every
//! `--poll-impressions`, inserter reports forwarded `--inserter-batch` at a time — each
//! batch one SQLite transaction with `synchronous = FULL` (on disk before it returns), as
//! the dispatcher records them. Reports events per second (sheet and piece events: sent,
//! printed, inserted), and the reconciliation at the end.

use std::time::Instant;

use clap::Parser;
use dispatcher::ledger::{Event, JobPlan, Ledger, Outcome, PiecePlan, Writer};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Sheet and piece events per second through the dispatcher's ledger")]
struct Args {
    /// Mail pieces in the run (two duplex sheets each: three events per sheet and one
    /// per piece beyond assembly, so 200,000 pieces give 1,400,000 events).
    #[arg(long, default_value_t = 200_000)]
    pieces: u32,
    /// Pieces per print job.
    #[arg(long, default_value_t = 20_000)]
    job_pieces: u32,
    /// Impressions between two IPP polls (one batch each).
    #[arg(long, default_value_t = 100)]
    poll_impressions: u64,
    /// Inserter reports per batch.
    #[arg(long, default_value_t = 100)]
    inserter_batch: usize,
    /// Printers (each followed by an inserter) reporting at once.
    #[arg(long, default_value_t = 4)]
    printers: usize,
    /// Folder for the database (default: a temporary folder on the working disk).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tmp = tempfile::tempdir_in(args.dir.clone().unwrap_or_else(|| ".".into()))?;
    let mut ledger = Ledger::open(&tmp.path().join("run-state.sqlite"))?;
    let run = "bench";
    let jobs: Vec<JobPlan> = (0..args.pieces.div_ceil(args.job_pieces))
        .map(|j| {
            let n = args.job_pieces.min(args.pieces - j * args.job_pieces);
            let id = format!("J{:06}", j + 1);
            JobPlan {
                print_job: id.clone(),
                origin: id,
                pieces: (1..=n)
                    .map(|p| PiecePlan {
                        piece: format!("{p:06}"),
                        sheet_last_impression: vec![u64::from(p) * 4 - 2, u64::from(p) * 4],
                    })
                    .collect(),
            }
        })
        .collect();
    let t = Instant::now();
    ledger.register(run, &jobs)?;
    let register = t.elapsed();
    let sheets = u64::from(args.pieces) * 2;
    println!(
        "registered {} jobs, {} pieces, {sheets} sheets (assembled events) in {:.2} s",
        jobs.len(),
        args.pieces,
        register.as_secs_f64()
    );

    // Each printer (with its inserter) prints its share of the jobs and waits for every
    // batch to be durable before it sends the next, as an agent waits for its ACK.
    let writer = Writer::start(ledger);
    let t = Instant::now();
    let batches: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.printers)
            .map(|k| {
                let writer = writer.clone();
                let jobs = &jobs;
                let args = &args;
                s.spawn(move || {
                    jobs.iter()
                        .skip(k)
                        .step_by(args.printers)
                        .map(|job| device(&writer, run, job, k, args))
                        .sum::<anyhow::Result<u64>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a device thread"))
            .sum::<anyhow::Result<u64>>()
    })?;
    drop(writer);
    let ledger = Ledger::open(&tmp.path().join("run-state.sqlite"))?;
    let elapsed = t.elapsed();
    let events = sheets * 2 + u64::from(args.pieces);
    let r = ledger.reconcile(run)?;
    anyhow::ensure!(
        r.complete && r.inserted_ok == u64::from(args.pieces) && r.sheets_printed == sheets
    );
    println!(
        "{events} events (sent, printed, inserted) in {batches} device batches from {} printers and inserters: {:.2} s, {:.0} events/s",
        args.printers,
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64(),
    );
    println!(
        "reconciliation: expected {}, inserted OK {}, complete {}",
        r.expected, r.inserted_ok, r.complete
    );
    Ok(())
}

/// One printer and its inserter working through a job: returns the batches sent.
fn device(writer: &Writer, run: &str, job: &JobPlan, k: usize, args: &Args) -> anyhow::Result<u64> {
    let printer = format!("printer-{}", k + 1);
    let inserter = format!("inserter-{}", k + 1);
    let id = &job.print_job;
    let record = |events: Vec<Event>| -> anyhow::Result<()> {
        let found = writer.record(run, events)?;
        anyhow::ensure!(found.is_empty(), "{found:?}");
        Ok(())
    };
    record(vec![Event::Sent {
        print_job: id.clone(),
        printer: printer.clone(),
        device_job: "1".into(),
    }])?;
    let mut batches = 1;
    let impressions = job.pieces.len() as u64 * 4;
    let (mut done, mut reported, mut seq) = (0, 0, 0u64);
    while done < impressions {
        done = (done + args.poll_impressions).min(impressions);
        record(vec![Event::Impressions {
            print_job: id.clone(),
            printer: printer.clone(),
            completed: done,
            evidence: "ipp job 1".into(),
        }])?;
        batches += 1;
        // The inserter follows the printer: pieces whose sheets are printed.
        let printed = (done / 4) as usize;
        while printed - reported >= args.inserter_batch
            || (done == impressions && reported < printed)
        {
            let to = (reported + args.inserter_batch).min(printed);
            let batch = job.pieces[reported..to]
                .iter()
                .map(|p| {
                    seq += 1;
                    Event::Inserted {
                        print_job: id.clone(),
                        piece: p.piece.clone(),
                        outcome: Outcome::Ok,
                        reason: None,
                        inserter: inserter.clone(),
                        seq,
                    }
                })
                .collect();
            record(batch)?;
            batches += 1;
            reported = to;
        }
    }
    Ok(batches)
}
