//! CSV with a header row: records parsed by `csv-core` straight from the stream, with the
//! bytes of one record bounded.
//!
//! Quoting follows RFC 4180 (`""` inside a quoted field is a quote; a quoted field may
//! hold line ends); rows may have any number of fields; blank lines are skipped. A record
//! longer than the limit is parsed to its end with a scratch buffer that is reused, so its
//! fields are never held, and becomes unreadable.

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use csv_core::ReadRecordResult;

use super::{InputError, RawData, RawRecord, skip_bom, too_long};

/// Fields of one record as parsed, before UTF-8 checks.
enum Row {
    /// The record's line and its fields (or why they are unreadable).
    Fields(u64, Result<Vec<String>, String>),
    /// The record's line and its length in bytes.
    TooLong(u64, u64),
}

/// Splits a CSV stream into raw records that carry the file's header.
pub(super) struct CsvReader {
    reader: BufReader<Box<dyn Read + Send>>,
    core: csv_core::Reader,
    headers: Arc<Vec<String>>,
    /// Records returned so far.
    number: u64,
    /// Line ends consumed so far.
    newlines: u64,
    out: Vec<u8>,
    ends: Vec<usize>,
    max: usize,
}

impl CsvReader {
    /// Reads the header row.
    pub(super) fn new(
        mut reader: BufReader<Box<dyn Read + Send>>,
        max: usize,
        name: &str,
    ) -> Result<Self, InputError> {
        let header_error = |message: String| InputError::CsvHeader {
            path: name.to_string(),
            message,
        };
        skip_bom(&mut reader).map_err(|e| header_error(e.to_string()))?;
        let mut r = CsvReader {
            reader,
            core: csv_core::Reader::new(),
            headers: Arc::new(Vec::new()),
            number: 0,
            newlines: 0,
            out: vec![0; 1024],
            ends: vec![0; 64],
            max,
        };
        let headers = match r.read_row().map_err(|e| header_error(e.to_string()))? {
            None => Vec::new(),
            Some(Row::TooLong(_, len)) => {
                return Err(header_error(format!(
                    "the header row is {len} bytes, more than the {max} bytes a record may have"
                )));
            }
            Some(Row::Fields(_, Err(why))) => return Err(header_error(why)),
            Some(Row::Fields(_, Ok(fields))) => {
                fields.iter().map(|h| h.trim().to_string()).collect()
            }
        };
        r.headers = Arc::new(headers);
        Ok(r)
    }

    /// Skips blank lines, then parses one record.
    fn read_row(&mut self) -> std::io::Result<Option<Row>> {
        loop {
            let avail = self.reader.fill_buf()?;
            if avail.is_empty() {
                return Ok(None);
            }
            let blank = avail
                .iter()
                .take_while(|&&b| b == b'\n' || b == b'\r')
                .count();
            self.newlines += memchr::memchr_iter(b'\n', &avail[..blank]).count() as u64;
            let more = blank < avail.len();
            self.reader.consume(blank);
            if more {
                break;
            }
        }
        let line = self.newlines + 1;
        let (mut raw, mut nout, mut nend) = (0u64, 0usize, 0usize);
        let mut overflow = false;
        loop {
            let avail = self.reader.fill_buf()?;
            let (res, nin, o, e) =
                self.core
                    .read_record(avail, &mut self.out[nout..], &mut self.ends[nend..]);
            self.newlines += memchr::memchr_iter(b'\n', &avail[..nin]).count() as u64;
            self.reader.consume(nin);
            raw += nin as u64;
            nout += o;
            nend += e;
            if raw > self.max as u64 {
                overflow = true;
            }
            match res {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull if overflow => nout = 0,
                ReadRecordResult::OutputFull => {
                    let n = self.out.len() * 2;
                    self.out.resize(n, 0);
                }
                ReadRecordResult::OutputEndsFull if overflow => nend = 0,
                ReadRecordResult::OutputEndsFull => {
                    let n = self.ends.len() * 2;
                    self.ends.resize(n, 0);
                }
                ReadRecordResult::Record => break,
                ReadRecordResult::End => return Ok(None),
            }
        }
        if overflow {
            return Ok(Some(Row::TooLong(line, raw)));
        }
        let mut fields = Vec::with_capacity(nend);
        let mut start = 0;
        for (i, &end) in self.ends[..nend].iter().enumerate() {
            let Some(bytes) = self.out.get(start..end) else {
                return Ok(Some(Row::Fields(line, Err("malformed CSV row".into()))));
            };
            match std::str::from_utf8(bytes) {
                Ok(s) => fields.push(s.to_string()),
                Err(e) => {
                    return Ok(Some(Row::Fields(
                        line,
                        Err(format!(
                            "malformed CSV row: field {} is not valid UTF-8 ({e})",
                            i + 1
                        )),
                    )));
                }
            }
            start = end;
        }
        Ok(Some(Row::Fields(line, Ok(fields))))
    }

    pub(super) fn next_record(&mut self) -> Option<Result<RawRecord, InputError>> {
        let row = match self.read_row() {
            Ok(Some(row)) => row,
            Ok(None) => return None,
            Err(source) => {
                return Some(Err(InputError::Read {
                    line: self.newlines + 1,
                    source,
                }));
            }
        };
        self.number += 1;
        let (line, data) = match row {
            Row::TooLong(line, len) => (line, too_long(len, self.max)),
            Row::Fields(line, Err(why)) => (line, RawData::Unreadable(why)),
            Row::Fields(line, Ok(row)) => (
                line,
                RawData::Csv {
                    headers: self.headers.clone(),
                    row,
                },
            ),
        };
        Some(Ok(RawRecord {
            number: self.number,
            line,
            data,
        }))
    }
}
