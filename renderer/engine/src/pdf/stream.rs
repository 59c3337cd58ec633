//! A PDF file written to disk object by object, so that a print job of any size is built in
//! bounded memory. Page objects go out as they are made, each from its own one-object
//! chunk, at a known offset. At the end the writer's tail (fonts, images, page tree,
//! info, catalog) is finished by pdf-writer as a file of its own; its objects are copied
//! after the pages at offsets read from its own cross-reference table, and one table for
//! the whole file replaces it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use pdf_writer::{Chunk, Pdf};
use sha2::{Digest, Sha256};

/// The bytes pdf-writer starts every file with (version and binary marker as the file
/// writer sets them).
fn header() -> Vec<u8> {
    let mut pdf = Pdf::new();
    pdf.set_version(1, 7);
    pdf.set_binary_marker(b"\xC0\xFF\xEE\xAB");
    let empty = pdf.finish();
    let end = find(&empty, b"xref\n").expect("pdf-writer writes a cross-reference table");
    empty[..end].to_vec()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::other(format!("streamed PDF: {what}"))
}

/// The file being written.
pub struct Streamer {
    file: BufWriter<File>,
    pos: u64,
    header: Vec<u8>,
    /// The offset of every object written so far, by object number (0 = not written:
    /// the header is at 0, so no object is).
    offsets: Vec<u64>,
    hasher: Sha256,
    error: Option<std::io::Error>,
}

impl Streamer {
    /// Creates (truncates) the file and writes the header.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let mut s = Self {
            file: BufWriter::with_capacity(1 << 20, File::create(path)?),
            pos: 0,
            header: header(),
            offsets: Vec::new(),
            hasher: Sha256::new(),
            error: None,
        };
        let h = s.header.clone();
        s.write(&h);
        Ok(s)
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.error.is_none()
            && let Err(e) = self.file.write_all(bytes)
        {
            self.error = Some(e);
        }
        self.hasher.update(bytes);
        self.pos += bytes.len() as u64;
    }

    /// Writes a chunk of exactly one indirect object.
    pub fn put(&mut self, c: &Chunk) {
        let mut refs = c.refs();
        let (Some(r), None) = (refs.next(), refs.next()) else {
            self.error
                .get_or_insert_with(|| bad("a streamed chunk must hold one object"));
            return;
        };
        let id = r.get() as usize;
        if self.offsets.len() <= id {
            self.offsets.resize(id + 1, 0);
        }
        if self.offsets[id] != 0 {
            self.error
                .get_or_insert_with(|| bad("an object was written twice"));
            return;
        }
        self.offsets[id] = self.pos;
        self.write(c.as_bytes());
    }

    /// Appends the objects of `tail` (a finished pdf-writer file holding the objects not
    /// streamed), the cross-reference table of the whole file and the tail's trailer;
    /// fsyncs. Returns the file's length and SHA-256.
    pub fn finish(mut self, tail: &[u8]) -> std::io::Result<(u64, [u8; 32])> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if !tail.starts_with(&self.header) {
            return Err(bad("the tail does not start with the header"));
        }
        // startxref N at the end gives the tail's table.
        let sx = rfind(tail, b"\nstartxref\n").ok_or_else(|| bad("no startxref"))?;
        let xref_at: usize = std::str::from_utf8(&tail[sx + 11..])
            .ok()
            .and_then(|t| t.split('\n').next())
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| bad("unreadable startxref"))?;
        let table = &tail[xref_at..sx];
        let line_end = find(table, b"\n").ok_or_else(|| bad("no xref line"))?;
        let first = find(&table[line_end + 1..], b"\n").ok_or_else(|| bad("no subsection"))?;
        let sub = std::str::from_utf8(&table[line_end + 1..line_end + 1 + first])
            .map_err(|_| bad("subsection"))?;
        let size: usize = sub
            .split(' ')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("subsection size"))?;
        let entries_at = line_end + 1 + first + 1;
        let entries = table
            .get(entries_at..entries_at + 20 * size)
            .ok_or_else(|| bad("short table"))?;
        let trailer = &table[entries_at + 20 * size..];
        if !trailer.starts_with(b"trailer\n") {
            return Err(bad("no trailer"));
        }
        // The tail's objects, after the streamed ones.
        let base = self.pos;
        let h = self.header.len() as u64;
        self.write(&tail[self.header.len()..xref_at]);
        if self.offsets.len() > size {
            return Err(bad("a streamed object is beyond the tail's /Size"));
        }
        let mut offsets = std::mem::take(&mut self.offsets);
        offsets.resize(size, 0);
        for (id, e) in entries.chunks(20).enumerate() {
            if e.get(17) == Some(&b'n') {
                let off: u64 = std::str::from_utf8(&e[..10])
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| bad("xref entry"))?;
                if offsets[id] != 0 {
                    return Err(bad("an object was written twice"));
                }
                offsets[id] = base + off - h;
            }
        }
        // The whole file's table, written as it is made (a job of 10^6 objects has a
        // 20 MB table): free entries linked in ascending order.
        let xref = self.pos;
        let mut out = Vec::with_capacity(1 << 16);
        write!(out, "xref\n0 {size}\n")?;
        let free: Vec<usize> = (0..size).filter(|&i| offsets[i] == 0).collect();
        let mut next_free = free.iter().skip(1).copied().chain(std::iter::once(0));
        for (id, &off) in offsets.iter().enumerate() {
            if off != 0 {
                write!(out, "{off:010} 00000 n\r\n")?;
            } else {
                let next = next_free.next().unwrap_or(0);
                let generation = if id == 0 { 65535 } else { 0 };
                write!(out, "{next:010} {generation:05} f\r\n")?;
            }
            if out.len() >= (1 << 16) - 20 {
                self.write(&out);
                out.clear();
            }
        }
        drop(offsets);
        out.extend_from_slice(trailer);
        write!(out, "\nstartxref\n{xref}\n%%EOF")?;
        self.write(&out);
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok((self.pos, self.hasher.finalize().into()))
    }
}
