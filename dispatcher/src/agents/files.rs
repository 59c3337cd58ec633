//! A print job as it travels to an agent: the header (pieces, impressions, the files'
//! sizes and SHA-256) and its two files, the print file and the manifest, in chunks.

use std::io::Read;
use std::path::{Path, PathBuf};

use pressrun_engine::assemble::locate::read_manifest;
use pressrun_engine::assemble::manifest::{ManifestLine, job_file_name, manifest_name};
use pressrun_proto::v1::{FileChunk, FileSpec, PieceSpec, PrintJob};
use sha2::{Digest, Sha256};

/// Bytes per chunk on the wire.
pub const CHUNK: usize = 1 << 20;

/// Largest file of a job sent (the agent refuses larger ones too).
pub const MAX_FILE: u64 = 16 << 30;

/// Opens a file of the run folder: a regular file (never a FIFO, a device or a symbolic
/// link put in its place) of at most [`MAX_FILE`] bytes.
fn open(path: &Path) -> Result<(std::fs::File, u64), String> {
    pressrun_engine::source::open_regular(path, MAX_FILE, pressrun_engine::source::FileKind::Output)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A job's header and where its files are.
pub struct Outgoing {
    pub header: PrintJob,
    pub files: Vec<PathBuf>,
}

/// Reads the manifest of `print_job` in the run folder `out` and hashes its files.
pub fn prepare(
    out: &Path,
    run: &str,
    print_job: &str,
    origin: &str,
    printer: &str,
) -> Result<Outgoing, String> {
    let lines = read_manifest(out, print_job)?;
    let mut pieces = Vec::new();
    let mut duplex = false;
    for line in &lines {
        if let ManifestLine::Piece(p) = line {
            duplex |= p.sheets.iter().any(|s| s.impressions.len() > 1);
            pieces.push(PieceSpec {
                piece: p.piece.clone(),
                sheets: p.sheets.len() as u32,
                feeders: p.feeders.clone(),
                last_impression: p
                    .sheets
                    .iter()
                    .flat_map(|s| s.impressions.iter().copied())
                    .max()
                    .unwrap_or(0),
            });
        }
    }
    let impressions = pieces.iter().map(|p| p.last_impression).max().unwrap_or(0);
    let paths = [
        out.join(job_file_name(print_job)),
        out.join(manifest_name(print_job)),
    ];
    let mut files = Vec::new();
    for path in &paths {
        files.push(spec_of(path)?);
    }
    Ok(Outgoing {
        header: PrintJob {
            run_id: run.to_string(),
            print_job: print_job.to_string(),
            origin: origin.to_string(),
            printer: printer.to_string(),
            duplex,
            impressions,
            pieces,
            files,
            media: String::new(),
        },
        files: paths.to_vec(),
    })
}

fn spec_of(path: &Path) -> Result<FileSpec, String> {
    let (f, len) = open(path)?;
    let mut f = f.take(len);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok(FileSpec {
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        size,
        sha256: hex::encode(h.finalize()),
    })
}

/// The chunks of one file, read as they are sent: exactly the `size` bytes its header
/// announced (a file that changed since is refused by the agent's SHA-256 check).
pub async fn send_file(
    path: &Path,
    spec: &FileSpec,
    tx: &tokio::sync::mpsc::Sender<Result<pressrun_proto::v1::AgentCommand, tonic::Status>>,
) -> Result<(), String> {
    use pressrun_proto::v1::agent_command::Kind;
    use tokio::io::AsyncReadExt;
    let (f, _) = open(path)?;
    let mut f = tokio::fs::File::from_std(f).take(spec.size);
    let name = &spec.name;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let mut filled = 0;
        while filled < CHUNK {
            let n = f
                .read(&mut buf[filled..])
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        let last = filled < CHUNK;
        let chunk = FileChunk {
            name: name.to_string(),
            data: prost::bytes::Bytes::copy_from_slice(&buf[..filled]),
            last,
        };
        tx.send(Ok(pressrun_proto::v1::AgentCommand {
            kind: Some(Kind::File(chunk)),
        }))
        .await
        .map_err(|_| "the agent went away".to_string())?;
        if last {
            return Ok(());
        }
    }
}
