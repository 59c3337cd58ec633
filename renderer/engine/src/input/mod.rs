//! Input: records streamed from JSON Lines or CSV, one raw record at a time, with line numbers.
//!
//! Parsing to JSON happens on the workers; the reader only splits the stream, so one
//! thread keeps up with many workers and memory never depends on the file's size: a record
//! longer than [`MAX_RECORD_BYTES`] is skipped as unreadable, never held whole. A UTF-8
//! byte-order mark at the start of the file is skipped.

mod delimited;
mod jsonl;

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

/// Input formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputFormat {
    /// One JSON object per line (`.jsonl`, `.ndjson`).
    Jsonl,
    /// Comma-separated values with a header row (`.csv`).
    Csv,
}

impl InputFormat {
    /// The names the command line accepts, in the order of the variants.
    pub const NAMES: [&'static str; 2] = ["jsonl", "csv"];

    /// Guesses the format from a file name.
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" | "json" => Some(Self::Jsonl),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }
}

impl std::str::FromStr for InputFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "jsonl" => Ok(Self::Jsonl),
            "csv" => Ok(Self::Csv),
            other => Err(format!("unknown input format '{other}': use jsonl or csv")),
        }
    }
}

/// One record as read, before parsing.
#[derive(Clone, Debug)]
pub struct RawRecord {
    /// 1-based record number (data rows only).
    pub number: u64,
    /// 1-based line in the input file where the record starts.
    pub line: u64,
    pub data: RawData,
}

/// The unparsed content of a record.
#[derive(Clone, Debug)]
pub enum RawData {
    /// A JSON text (one line).
    Json(String),
    /// A CSV row and the file's header.
    Csv {
        headers: Arc<Vec<String>>,
        row: Vec<String>,
    },
    /// A line that could not be read as a record (e.g. invalid UTF-8, too long).
    Unreadable(String),
}

/// An input file that cannot be opened or read at all.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot tell the input format of {0}: name it .jsonl or .csv, or pass --format")]
    UnknownFormat(String),
    #[error("cannot read the CSV header of {path}: {message}")]
    CsvHeader { path: String, message: String },
    #[error("read error at line {line}: {source}")]
    Read { line: u64, source: std::io::Error },
}

/// Longest record the reader accepts by default (64 MiB): a longer one is
/// [`RawData::Unreadable`] with a reason, skipped without being held in memory, and the run
/// goes on.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// The UTF-8 byte-order mark some editors put at the start of a file.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// Streams raw records from a file.
pub struct RecordReader {
    inner: Inner,
}

enum Inner {
    Jsonl(jsonl::JsonlReader),
    Csv(Box<delimited::CsvReader>),
}

impl RecordReader {
    /// Opens `path` (`-` = standard input) in the given or guessed format.
    pub fn open(path: &Path, format: Option<InputFormat>) -> Result<Self, InputError> {
        let name = path.display().to_string();
        let format = format
            .or_else(|| InputFormat::from_path(path))
            .ok_or_else(|| InputError::UnknownFormat(name.clone()))?;
        let input: Box<dyn Read + Send> = if path.as_os_str() == "-" {
            Box::new(std::io::stdin())
        } else {
            Box::new(File::open(path).map_err(|source| InputError::Open {
                path: name.clone(),
                source,
            })?)
        };
        Self::from_reader(input, format, &name)
    }

    /// Reads records from any byte stream, with records of at most [`MAX_RECORD_BYTES`].
    pub fn from_reader(
        input: Box<dyn Read + Send>,
        format: InputFormat,
        name: &str,
    ) -> Result<Self, InputError> {
        Self::with_max_record(input, format, name, MAX_RECORD_BYTES)
    }

    /// Reads records from any byte stream; a record longer than `max_record` bytes is
    /// unreadable.
    pub fn with_max_record(
        input: Box<dyn Read + Send>,
        format: InputFormat,
        name: &str,
        max_record: usize,
    ) -> Result<Self, InputError> {
        let reader = BufReader::with_capacity(1 << 20, input);
        let inner = match format {
            InputFormat::Jsonl => Inner::Jsonl(jsonl::JsonlReader::new(reader, max_record)),
            InputFormat::Csv => Inner::Csv(Box::new(delimited::CsvReader::new(
                reader, max_record, name,
            )?)),
        };
        Ok(Self { inner })
    }
}

impl Iterator for RecordReader {
    type Item = Result<RawRecord, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::Jsonl(r) => r.next_record(),
            Inner::Csv(r) => r.next_record(),
        }
    }
}

/// Says why a record was too long.
fn too_long(size: u64, max: usize) -> RawData {
    RawData::Unreadable(format!(
        "the record is {size} bytes, more than the {max} bytes a record may have; split it, or check for a missing line end or quote"
    ))
}

/// Drops a byte-order mark at the start of a stream.
fn skip_bom(reader: &mut BufReader<Box<dyn Read + Send>>) -> std::io::Result<()> {
    let buf = reader.fill_buf()?;
    if buf.starts_with(BOM) {
        reader.consume(BOM.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &'static str, format: InputFormat) -> Vec<RawRecord> {
        RecordReader::from_reader(Box::new(text.as_bytes()), format, "test")
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn jsonl_keeps_line_numbers_and_skips_blank_lines() {
        let r = read(
            "{\"a\":1}\n\n{\"a\":2}\r\n  \n{\"a\":3}",
            InputFormat::Jsonl,
        );
        let seen: Vec<(u64, u64)> = r.iter().map(|r| (r.number, r.line)).collect();
        assert_eq!(seen, vec![(1, 1), (2, 3), (3, 5)]);
        assert!(matches!(&r[1].data, RawData::Json(s) if s == "{\"a\":2}"));
    }

    #[test]
    fn jsonl_invalid_utf8_is_a_record_not_a_crash() {
        let bytes: &'static [u8] = b"{\"a\":1}\n\xff\xfe\n{\"a\":3}\n";
        let r: Vec<_> = RecordReader::from_reader(Box::new(bytes), InputFormat::Jsonl, "t")
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(r.len(), 3);
        assert!(matches!(&r[1].data, RawData::Unreadable(m) if m.contains("UTF-8")));
    }

    #[test]
    fn csv_rows_carry_headers_and_lines() {
        let r = read("name,amount\nAnna,1.5\n\"Ol\"\"a\",2\n", InputFormat::Csv);
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].line, 3);
        match &r[1].data {
            RawData::Csv { headers, row } => {
                assert_eq!(headers.as_slice(), ["name", "amount"]);
                assert_eq!(row, &["Ol\"a", "2"]);
            }
            other => panic!("{other:?}"),
        }
    }

    /// `n` bytes of `fill`, then `tail`, produced on the fly.
    struct Long {
        left: u64,
        fill: u8,
        tail: std::io::Cursor<Vec<u8>>,
    }

    impl Read for Long {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.left == 0 {
                return self.tail.read(buf);
            }
            let n = buf.len().min(self.left as usize);
            buf[..n].fill(self.fill);
            self.left -= n as u64;
            Ok(n)
        }
    }

    fn read_max(bytes: &[u8], format: InputFormat, max: usize) -> Vec<RawRecord> {
        RecordReader::with_max_record(
            Box::new(std::io::Cursor::new(bytes.to_vec())),
            format,
            "t",
            max,
        )
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        let r = read("\u{feff}{\"a\":1}\n{\"a\":2}\n", InputFormat::Jsonl);
        assert!(
            matches!(&r[0].data, RawData::Json(s) if s == "{\"a\":1}"),
            "{r:?}"
        );
        let r = read("\u{feff}name,amount\nAnna,1\n", InputFormat::Csv);
        match &r[0].data {
            RawData::Csv { headers, row } => {
                assert_eq!(headers.as_slice(), ["name", "amount"]);
                assert_eq!(row, &["Anna", "1"]);
            }
            other => panic!("{other:?}"),
        }
        // Only at the start: a mark inside a line is data.
        let r = read("{}\n\u{feff}{}\n", InputFormat::Jsonl);
        assert!(matches!(&r[1].data, RawData::Json(s) if s.starts_with('\u{feff}')));
    }

    #[test]
    fn a_jsonl_record_over_the_limit_is_unreadable_and_the_run_goes_on() {
        let long = "x".repeat(100);
        let text = format!("{{\"a\":1}}\n{long}\n\n{{\"a\":3}}\n{long}");
        let r = read_max(text.as_bytes(), InputFormat::Jsonl, 64);
        let seen: Vec<(u64, u64)> = r.iter().map(|r| (r.number, r.line)).collect();
        assert_eq!(seen, [(1, 1), (2, 2), (3, 4), (4, 5)]);
        assert!(
            matches!(&r[1].data, RawData::Unreadable(m) if m.contains("100 bytes, more than the 64")),
            "{:?}",
            r[1]
        );
        assert!(matches!(&r[2].data, RawData::Json(s) if s == "{\"a\":3}"));
        assert!(matches!(&r[3].data, RawData::Unreadable(_)));
        // Exactly at the limit still fits.
        let r = read_max(b"1234\n", InputFormat::Jsonl, 4);
        assert!(matches!(&r[0].data, RawData::Json(s) if s == "1234"));
    }

    #[test]
    fn a_line_of_hundreds_of_megabytes_is_skipped_with_the_default_limit() {
        let input = Long {
            left: 3 * MAX_RECORD_BYTES as u64,
            fill: b'a',
            tail: std::io::Cursor::new(b"\n{\"a\":2}\n".to_vec()),
        };
        let r: Vec<_> = RecordReader::from_reader(Box::new(input), InputFormat::Jsonl, "t")
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(r.len(), 2);
        assert!(matches!(&r[0].data, RawData::Unreadable(m) if m.contains("more than the")));
        assert_eq!((r[1].number, r[1].line), (2, 2));
    }

    #[test]
    fn a_csv_record_over_the_limit_is_unreadable_and_lines_stay_right() {
        let long = "y".repeat(100);
        let text = format!("name,note\nA,\"two\nlines\"\nB,{long}\n\nC,ok\n");
        let r = read_max(text.as_bytes(), InputFormat::Csv, 64);
        let seen: Vec<(u64, u64)> = r.iter().map(|r| (r.number, r.line)).collect();
        assert_eq!(seen, [(1, 2), (2, 4), (3, 6)]);
        assert!(matches!(&r[0].data, RawData::Csv { row, .. } if row == &["A", "two\nlines"]));
        assert!(
            matches!(&r[1].data, RawData::Unreadable(m) if m.contains("more than the 64")),
            "{:?}",
            r[1]
        );
        assert!(matches!(&r[2].data, RawData::Csv { row, .. } if row == &["C", "ok"]));
        // An unclosed quote makes the rest of the file one field: bounded, then unreadable.
        let input = Long {
            left: 3 * MAX_RECORD_BYTES as u64,
            fill: b'z',
            tail: std::io::Cursor::new(b"\nD,1\n".to_vec()),
        };
        let head = std::io::Cursor::new(b"name,note\nA,\"".to_vec()).chain(input);
        let r: Vec<_> = RecordReader::from_reader(Box::new(head), InputFormat::Csv, "t")
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(r.len(), 1);
        assert!(matches!(&r[0].data, RawData::Unreadable(_)));
    }

    #[test]
    fn csv_rows_with_crlf_and_bad_utf8() {
        let r = read_max(b"a,b\r\n1,2\r\n\xff,3\r\n", InputFormat::Csv, 1 << 20);
        assert_eq!(r.len(), 2);
        assert!(matches!(&r[0].data, RawData::Csv { row, .. } if row == &["1", "2"]));
        assert_eq!(r[1].line, 3);
        assert!(matches!(&r[1].data, RawData::Unreadable(m) if m.contains("UTF-8")));
        let err = RecordReader::with_max_record(
            Box::new(std::io::Cursor::new(b"\xff,a\n".to_vec())),
            InputFormat::Csv,
            "t",
            1 << 20,
        );
        assert!(matches!(err, Err(InputError::CsvHeader { .. })));
    }

    #[test]
    fn format_from_extension() {
        assert_eq!(
            InputFormat::from_path(Path::new("a/b.JSONL")),
            Some(InputFormat::Jsonl)
        );
        assert_eq!(
            InputFormat::from_path(Path::new("x.csv")),
            Some(InputFormat::Csv)
        );
        assert_eq!(InputFormat::from_path(Path::new("x.txt")), None);
    }
}
