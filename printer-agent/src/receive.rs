//! Taking a print job from the dispatcher: the header is checked (names, printer, files,
//! sizes), each file is written as `.part`, its size and SHA-256 checked against the
//! header, fsynced and renamed. Only a job whose every file is verified is held.

use std::io::Write;
use std::path::{Path, PathBuf};

use pressrun_proto::v1::{FileChunk, PrintJob};
use sha2::{Digest, Sha256};

/// Largest file of a job accepted.
pub const MAX_FILE: u64 = 16 << 30;

/// A name the agent uses in a path: 1 to 64 letters, digits, `-` or `_` (so never `.`,
/// `..` or a separator).
pub fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A job whose files are arriving.
pub struct Receiving {
    pub header: PrintJob,
    pub dir: PathBuf,
    next: usize,
    open: Option<Open>,
}

struct Open {
    file: std::fs::File,
    part: PathBuf,
    hash: Sha256,
    written: u64,
}

impl Receiving {
    /// Checks a job's header and makes its folder. `printers` are this agent's.
    pub fn start(header: PrintJob, dir: PathBuf, printers: &[&str]) -> Result<Self, String> {
        let job = &header.print_job;
        if !safe_name(&header.run_id) || !safe_name(job) || !safe_name(&header.origin) {
            return Err(format!(
                "run {:?} / job {job:?} / origin {:?}: names are 1 to 64 letters, digits, '-' or '_'",
                header.run_id, header.origin
            ));
        }
        if !printers.contains(&header.printer.as_str()) {
            return Err(format!(
                "job {job} is for printer {:?}, which this agent does not drive",
                header.printer
            ));
        }
        let expected = [format!("{job}.pdf"), format!("{job}.manifest.jsonl")];
        let names: Vec<&str> = header.files.iter().map(|f| f.name.as_str()).collect();
        if names != expected {
            return Err(format!(
                "job {job}: the files must be {expected:?}, not {names:?}"
            ));
        }
        for f in &header.files {
            if f.size > MAX_FILE
                || f.sha256.len() != 64
                || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(format!(
                    "job {job}: file {} has a size above {MAX_FILE} or a malformed SHA-256",
                    f.name
                ));
            }
        }
        let media_ok =
            header.media.is_empty() || pressrun_engine::production::is_media_keyword(&header.media);
        if !media_ok {
            return Err(format!(
                "job {job}: media {:?} is not an IPP media keyword",
                header.media
            ));
        }
        if header.pieces.is_empty() {
            return Err(format!("job {job} has no pieces"));
        }
        let max = header
            .pieces
            .iter()
            .map(|p| p.last_impression)
            .max()
            .unwrap_or(0);
        if max != header.impressions {
            return Err(format!(
                "job {job}: {} impressions, but its last piece ends at impression {max}",
                header.impressions
            ));
        }
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Self {
            header,
            dir,
            next: 0,
            open: None,
        })
    }

    /// Takes one chunk; `Ok(true)` when the last file is complete and verified.
    pub fn chunk(&mut self, c: &FileChunk) -> Result<bool, String> {
        let Some(spec) = self.header.files.get(self.next) else {
            return Err("a chunk after the job's last file".into());
        };
        if c.name != spec.name {
            return Err(format!(
                "a chunk of {:?} where {:?} was expected",
                c.name, spec.name
            ));
        }
        if self.open.is_none() {
            let part = self.dir.join(format!("{}.part", spec.name));
            let file =
                std::fs::File::create(&part).map_err(|e| format!("{}: {e}", part.display()))?;
            self.open = Some(Open {
                file,
                part,
                hash: Sha256::new(),
                written: 0,
            });
        }
        let open = self.open.as_mut().expect("opened above");
        open.written += c.data.len() as u64;
        if open.written > spec.size {
            return Err(format!(
                "{} is longer than the {} bytes announced",
                spec.name, spec.size
            ));
        }
        open.hash.update(&c.data);
        open.file
            .write_all(&c.data)
            .map_err(|e| format!("{}: {e}", open.part.display()))?;
        if !c.last {
            return Ok(false);
        }
        let open = self.open.take().expect("opened above");
        if open.written != spec.size {
            return Err(format!(
                "{} has {} bytes, {} were announced",
                spec.name, open.written, spec.size
            ));
        }
        let got = hex::encode(open.hash.finalize());
        if got != spec.sha256 {
            return Err(format!(
                "{}: SHA-256 {got}, {} was announced",
                spec.name, spec.sha256
            ));
        }
        open.file
            .sync_all()
            .map_err(|e| format!("{}: {e}", open.part.display()))?;
        let done = self.dir.join(&spec.name);
        std::fs::rename(&open.part, &done).map_err(|e| format!("{}: {e}", done.display()))?;
        self.next += 1;
        if self.next < self.header.files.len() {
            return Ok(false);
        }
        sync_dir(&self.dir)?;
        Ok(true)
    }
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("{}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pressrun_proto::v1::{FileSpec, PieceSpec};

    fn spec(name: &str, data: &[u8]) -> FileSpec {
        FileSpec {
            name: name.into(),
            size: data.len() as u64,
            sha256: hex::encode(Sha256::digest(data)),
        }
    }

    fn header(pdf: &[u8], manifest: &[u8]) -> PrintJob {
        PrintJob {
            run_id: "r1".into(),
            print_job: "J000001".into(),
            origin: "J000001".into(),
            printer: "p1".into(),
            duplex: false,
            impressions: 2,
            pieces: vec![PieceSpec {
                piece: "000001".into(),
                sheets: 2,
                feeders: "00".into(),
                last_impression: 2,
            }],
            files: vec![
                spec("J000001.pdf", pdf),
                spec("J000001.manifest.jsonl", manifest),
            ],
            media: String::new(),
        }
    }

    fn chunk(name: &str, data: &[u8], last: bool) -> FileChunk {
        FileChunk {
            name: name.into(),
            data: prost::bytes::Bytes::copy_from_slice(data),
            last,
        }
    }

    #[test]
    fn a_job_is_held_only_when_every_file_is_verified() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("j");
        let mut r = Receiving::start(header(b"%PDF-1.7 x", b"{}\n"), d.clone(), &["p1"]).unwrap();
        assert!(!r.chunk(&chunk("J000001.pdf", b"%PDF-1.7", false)).unwrap());
        assert!(!r.chunk(&chunk("J000001.pdf", b" x", true)).unwrap());
        assert!(
            r.chunk(&chunk("J000001.manifest.jsonl", b"{}\n", true))
                .unwrap()
        );
        assert_eq!(std::fs::read(d.join("J000001.pdf")).unwrap(), b"%PDF-1.7 x");

        // Damaged in transit: refused.
        let mut r = Receiving::start(
            header(b"%PDF-1.7 x", b"{}\n"),
            dir.path().join("k"),
            &["p1"],
        )
        .unwrap();
        assert!(
            r.chunk(&chunk("J000001.pdf", b"%PDF-1.7 y", true))
                .unwrap_err()
                .contains("SHA-256")
        );
        // Longer than announced, or out of order: refused.
        let mut r =
            Receiving::start(header(b"ab", b"{}\n"), dir.path().join("l"), &["p1"]).unwrap();
        assert!(r.chunk(&chunk("J000001.pdf", b"abc", false)).is_err());
        let mut r =
            Receiving::start(header(b"ab", b"{}\n"), dir.path().join("m"), &["p1"]).unwrap();
        assert!(
            r.chunk(&chunk("J000001.manifest.jsonl", b"{}\n", true))
                .is_err()
        );
        // Headers that name what they must not.
        let mut h = header(b"ab", b"{}\n");
        h.print_job = "../etc".into();
        assert!(Receiving::start(h, dir.path().join("n"), &["p1"]).is_err());
        assert!(Receiving::start(header(b"ab", b"{}\n"), dir.path().join("o"), &["p2"]).is_err());
        let mut h = header(b"ab", b"{}\n");
        h.files[0].name = "other.pdf".into();
        assert!(Receiving::start(h, dir.path().join("p"), &["p1"]).is_err());
        let mut h = header(b"ab", b"{}\n");
        h.impressions = 9;
        assert!(Receiving::start(h, dir.path().join("q"), &["p1"]).is_err());
        let mut h = header(b"ab", b"{}\n");
        h.media = "A4; rm -rf".into();
        assert!(Receiving::start(h, dir.path().join("r"), &["p1"]).is_err());
        let mut h = header(b"ab", b"{}\n");
        h.media = "iso_a4_210x297mm".into();
        assert!(Receiving::start(h, dir.path().join("s"), &["p1"]).is_ok());
    }
}
