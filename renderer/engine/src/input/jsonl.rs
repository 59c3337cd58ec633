//! JSON Lines: one record per line, split with a bounded buffer.

use std::io::{BufRead, BufReader, Read};

use super::{InputError, RawData, RawRecord, skip_bom, too_long};

/// Splits a JSON Lines stream into raw records.
pub(super) struct JsonlReader {
    reader: BufReader<Box<dyn Read + Send>>,
    /// Lines read so far.
    line: u64,
    /// Records returned so far.
    number: u64,
    buf: Vec<u8>,
    max: usize,
    started: bool,
}

/// One line: its bytes (without the line end), or its length when it was too long to keep.
enum Line {
    Fits,
    TooLong(u64),
}

impl JsonlReader {
    pub(super) fn new(reader: BufReader<Box<dyn Read + Send>>, max: usize) -> Self {
        Self {
            reader,
            line: 0,
            number: 0,
            buf: Vec::new(),
            max,
            started: false,
        }
    }

    /// Reads the next line into `buf`, keeping at most `max` bytes of it.
    fn read_line(&mut self) -> std::io::Result<Option<Line>> {
        if !self.started {
            self.started = true;
            skip_bom(&mut self.reader)?;
        }
        self.buf.clear();
        let mut len: u64 = 0;
        let mut any = false;
        loop {
            let avail = self.reader.fill_buf()?;
            if avail.is_empty() {
                break;
            }
            any = true;
            let (part, used, done) = match memchr::memchr(b'\n', avail) {
                Some(i) => (&avail[..i], i + 1, true),
                None => (avail, avail.len(), false),
            };
            len += part.len() as u64;
            if len <= self.max as u64 {
                self.buf.extend_from_slice(part);
            } else if !self.buf.is_empty() {
                self.buf = Vec::new();
            }
            self.reader.consume(used);
            if done {
                break;
            }
        }
        if !any {
            return Ok(None);
        }
        Ok(Some(if len > self.max as u64 {
            Line::TooLong(len)
        } else {
            Line::Fits
        }))
    }

    pub(super) fn next_record(&mut self) -> Option<Result<RawRecord, InputError>> {
        loop {
            let line = match self.read_line() {
                Ok(Some(l)) => l,
                Ok(None) => return None,
                Err(source) => {
                    return Some(Err(InputError::Read {
                        line: self.line + 1,
                        source,
                    }));
                }
            };
            self.line += 1;
            let data = match line {
                Line::TooLong(len) => too_long(len, self.max),
                Line::Fits => {
                    let text = self.buf.strip_suffix(b"\r").unwrap_or(&self.buf);
                    if text.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    match std::str::from_utf8(text) {
                        Ok(s) => RawData::Json(s.to_string()),
                        Err(e) => RawData::Unreadable(format!("line is not valid UTF-8 ({e})")),
                    }
                }
            };
            self.number += 1;
            return Some(Ok(RawRecord {
                number: self.number,
                line: self.line,
                data,
            }));
        }
    }
}
