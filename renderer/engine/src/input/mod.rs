//! Input: records streamed from JSON Lines or CSV, one raw record at a time, with line numbers.
//!
//! Parsing to JSON happens on the workers; the reader only splits the stream, so one
//! thread keeps up with many workers and memory never depends on the file's size.

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
    /// A line that could not be read as a record (e.g. invalid UTF-8, malformed CSV).
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

/// Streams raw records from a file.
pub enum RecordReader {
    Jsonl {
        reader: BufReader<Box<dyn Read + Send>>,
        line: u64,
        number: u64,
        buf: Vec<u8>,
    },
    Csv {
        reader: csv::Reader<Box<dyn Read + Send>>,
        headers: Arc<Vec<String>>,
        number: u64,
        record: csv::StringRecord,
    },
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

    /// Reads records from any byte stream.
    pub fn from_reader(
        input: Box<dyn Read + Send>,
        format: InputFormat,
        name: &str,
    ) -> Result<Self, InputError> {
        Ok(match format {
            InputFormat::Jsonl => RecordReader::Jsonl {
                reader: BufReader::with_capacity(1 << 20, input),
                line: 0,
                number: 0,
                buf: Vec::new(),
            },
            InputFormat::Csv => {
                let mut reader = csv::ReaderBuilder::new()
                    .flexible(true)
                    .buffer_capacity(1 << 20)
                    .from_reader(input);
                let headers = reader
                    .headers()
                    .map_err(|e| InputError::CsvHeader {
                        path: name.to_string(),
                        message: e.to_string(),
                    })?
                    .iter()
                    .map(|h| h.trim().to_string())
                    .collect();
                RecordReader::Csv {
                    reader,
                    headers: Arc::new(headers),
                    number: 0,
                    record: csv::StringRecord::new(),
                }
            }
        })
    }
}

impl Iterator for RecordReader {
    type Item = Result<RawRecord, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            RecordReader::Jsonl {
                reader,
                line,
                number,
                buf,
            } => loop {
                buf.clear();
                match reader.read_until(b'\n', buf) {
                    Ok(0) => return None,
                    Ok(_) => {
                        *line += 1;
                        let text = buf.strip_suffix(b"\n").unwrap_or(buf);
                        let text = text.strip_suffix(b"\r").unwrap_or(text);
                        if text.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        *number += 1;
                        let data = match std::str::from_utf8(text) {
                            Ok(s) => RawData::Json(s.to_string()),
                            Err(e) => RawData::Unreadable(format!("line is not valid UTF-8 ({e})")),
                        };
                        return Some(Ok(RawRecord {
                            number: *number,
                            line: *line,
                            data,
                        }));
                    }
                    Err(source) => {
                        return Some(Err(InputError::Read {
                            line: *line + 1,
                            source,
                        }));
                    }
                }
            },
            RecordReader::Csv {
                reader,
                headers,
                number,
                record,
            } => {
                let result = reader.read_record(record);
                let line = record.position().map(|p| p.line()).unwrap_or(0);
                match result {
                    Ok(false) => None,
                    Ok(true) => {
                        *number += 1;
                        let row = record.iter().map(str::to_string).collect();
                        Some(Ok(RawRecord {
                            number: *number,
                            line,
                            data: RawData::Csv {
                                headers: headers.clone(),
                                row,
                            },
                        }))
                    }
                    Err(e) => {
                        let line = e.position().map(|p| p.line()).unwrap_or(line);
                        if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                            return Some(Err(InputError::Read {
                                line,
                                source: std::io::Error::other(e.to_string()),
                            }));
                        }
                        *number += 1;
                        Some(Ok(RawRecord {
                            number: *number,
                            line,
                            data: RawData::Unreadable(format!("malformed CSV row: {e}")),
                        }))
                    }
                }
            }
        }
    }
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
