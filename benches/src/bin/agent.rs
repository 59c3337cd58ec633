//! The printer agent's own cost per print job, with the devices taken out: what
//! `printer-agent serve` does on its disk for one job of `--pieces` duplex pieces of two
//! sheets — receive the print file and manifest in 1 MiB chunks (SHA-256, write, fsync,
//! rename), hold it, mark it submitting and accepted, record an impression count every
//! `--poll-impressions`, declare it to the inserter and record every piece report before
//! its ACK, end it, and drop the batches the dispatcher acknowledges — every step a
//! SQLite transaction with `synchronous = FULL`, as the agent makes them. Reports the
//! time per job, per piece and per durable step.

use std::time::Instant;

use clap::Parser;
use pressrun_proto::v1::{FileChunk, FileSpec, PieceSpec, PrintJob};
use printer_agent::events;
use printer_agent::pil::host::Outcome;
use printer_agent::pil::message::PieceStatus;
use printer_agent::receive::Receiving;
use printer_agent::store::{JobStage, Store};
use sha2::{Digest, Sha256};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "The printer agent's per-job overhead on its own disk")]
struct Args {
    /// Print jobs.
    #[arg(long, default_value_t = 5)]
    jobs: u32,
    /// Mail pieces per job (two duplex sheets each).
    #[arg(long, default_value_t = 1000)]
    pieces: u32,
    /// Bytes of print file per sheet (a statement sheet of the example template is about
    /// 7 KiB with its marks).
    #[arg(long, default_value_t = 7 * 1024)]
    sheet_bytes: usize,
    /// Impressions between two IPP polls that found progress.
    #[arg(long, default_value_t = 10)]
    poll_impressions: u64,
    /// Folder for the agent's state (default: a temporary folder on the working disk).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let tmp = tempfile::tempdir_in(a.dir.clone().unwrap_or_else(|| ".".into()))?;
    let store = Store::open(tmp.path())?;
    let sheets = u64::from(a.pieces) * 2;
    let impressions = sheets * 2;
    let pdf: Vec<u8> = (0..sheets as usize * a.sheet_bytes)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let manifest: Vec<u8> = (0..a.pieces)
        .map(|p| {
            format!(
                "{{\"piece\":\"{:06}\",\"sheets\":[1,2],\"pad\":\"{}\"}}\n",
                p + 1,
                "x".repeat(400)
            )
        })
        .collect::<String>()
        .into_bytes();
    let pieces: Vec<PieceSpec> = (0..a.pieces)
        .map(|p| PieceSpec {
            piece: format!("{:06}", p + 1),
            sheets: 2,
            feeders: "00".into(),
            last_impression: u64::from(p + 1) * 4,
        })
        .collect();
    let (mut receive_s, mut steps) = (0.0, 0u64);
    let started = Instant::now();
    let mut seq = 0;
    for j in 0..a.jobs {
        let id = format!("J{:06}", j + 1);
        let header = PrintJob {
            run_id: "bench".into(),
            print_job: id.clone(),
            origin: id.clone(),
            printer: "p1".into(),
            duplex: true,
            impressions,
            pieces: pieces.clone(),
            files: vec![
                FileSpec {
                    name: format!("{id}.pdf"),
                    size: pdf.len() as u64,
                    sha256: hex::encode(Sha256::digest(&pdf)),
                },
                FileSpec {
                    name: format!("{id}.manifest.jsonl"),
                    size: manifest.len() as u64,
                    sha256: hex::encode(Sha256::digest(&manifest)),
                },
            ],
            media: String::new(),
        };
        let t = Instant::now();
        let dir = store.job_dir("bench", &id);
        let mut r =
            Receiving::start(header.clone(), dir.clone(), &["p1"]).map_err(anyhow::Error::msg)?;
        for (name, bytes) in [
            (format!("{id}.pdf"), &pdf),
            (format!("{id}.manifest.jsonl"), &manifest),
        ] {
            let chunks: Vec<&[u8]> = bytes.chunks(1 << 20).collect();
            for (i, c) in chunks.iter().enumerate() {
                r.chunk(&FileChunk {
                    name: name.clone(),
                    data: prost::bytes::Bytes::copy_from_slice(c),
                    last: i + 1 == chunks.len(),
                })
                .map_err(anyhow::Error::msg)?;
            }
        }
        receive_s += t.elapsed().as_secs_f64();
        store.hold(&header, &dir)?;
        let job = store.job("bench", &id)?.expect("held");
        store.advance(&job, JobStage::Submitting, None, 0, vec![])?;
        store.advance(
            &job,
            JobStage::Printing,
            Some(j as i32 + 1),
            0,
            vec![events::accepted(&id, "p1", j as i32 + 1)],
        )?;
        let declared: Vec<(String, u32, u32)> =
            pieces.iter().map(|p| (p.piece.clone(), 2, 0)).collect();
        store.pil_declared("i1", &id, "bench", &id, &declared)?;
        steps += 4;
        let mut done = 0;
        let mut next_piece = 0;
        while done < impressions {
            done = (done + a.poll_impressions).min(impressions);
            store.advance(
                &job,
                JobStage::Printing,
                None,
                done,
                vec![events::impressions(&id, "p1", done, 1)],
            )?;
            steps += 1;
            // The inserter follows: every piece whose sheets are out is reported.
            while next_piece < pieces.len() && pieces[next_piece].last_impression <= done {
                seq += 1;
                let p = &pieces[next_piece].piece;
                let o = Outcome {
                    seq,
                    status: PieceStatus::Ok,
                    reason: None,
                    read: 2,
                };
                store.pil_record(
                    "i1",
                    seq,
                    Some("bench"),
                    vec![events::piece(&id, "i1", p, "ok", "", seq)],
                    Some((&id, p, &o)),
                )?;
                steps += 1;
                next_piece += 1;
            }
        }
        store.advance(
            &job,
            JobStage::Ended,
            None,
            impressions,
            vec![events::ended(&id, "p1", "completed".into(), impressions)],
        )?;
        store.pil_ended("i1", &id)?;
        // The dispatcher acknowledges everything sent.
        let last = store.pending(0, usize::MAX)?.last().map_or(0, |b| b.seq);
        store.acknowledged(last)?;
        steps += 3;
    }
    let total = started.elapsed().as_secs_f64();
    let per_job = total / f64::from(a.jobs);
    println!(
        "{} jobs of {} pieces ({} impressions, {:.1} MiB print file): {:.3} s per job ({:.3} s receiving), {:.0} µs per piece, {:.2} ms per durable step ({steps} steps)",
        a.jobs,
        a.pieces,
        impressions,
        pdf.len() as f64 / (1 << 20) as f64,
        per_job,
        receive_s / f64::from(a.jobs),
        per_job * 1e6 / f64::from(a.pieces),
        total * 1e3 / steps as f64,
    );
    Ok(())
}
