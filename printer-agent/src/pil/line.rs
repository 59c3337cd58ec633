//! Line framing: ASCII lines ended by `\r`, `\n` or `\r\n`, at most [`MAX_LINE`] bytes.

/// The longest line PIL/1 allows, in bytes, without its end.
pub const MAX_LINE: usize = 512;

/// One line cut from the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// A line of printable ASCII (without its end).
    Text(String),
    /// A line longer than [`MAX_LINE`]: discarded, to be answered `ERR code=overlong`.
    Overlong,
    /// A line holding bytes outside printable ASCII: answered `ERR code=encoding`.
    Encoding,
}

/// Cuts bytes, as they arrive in any pieces, into [`Line`]s.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
    /// The current line passed [`MAX_LINE`]: its bytes are dropped until its end.
    overlong: bool,
    /// The last byte ended a line with `\r`: a `\n` right after it belongs to that end.
    after_cr: bool,
}

impl LineSplitter {
    /// Feeds bytes; returns the lines they complete, in order. Empty lines are skipped.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Line> {
        let mut out = Vec::new();
        for &b in bytes {
            let after_cr = std::mem::take(&mut self.after_cr);
            match b {
                b'\n' if after_cr => {}
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    if let Some(line) = self.end_line() {
                        out.push(line);
                    }
                }
                _ if self.overlong => {}
                _ if self.buf.len() == MAX_LINE => {
                    self.overlong = true;
                    self.buf.clear();
                }
                _ => self.buf.push(b),
            }
        }
        out
    }

    fn end_line(&mut self) -> Option<Line> {
        if std::mem::take(&mut self.overlong) {
            return Some(Line::Overlong);
        }
        if self.buf.is_empty() {
            return None;
        }
        let bytes = std::mem::take(&mut self.buf);
        if bytes.iter().all(|b| (b' '..=b'~').contains(b)) {
            Some(Line::Text(String::from_utf8(bytes).expect("ASCII")))
        } else {
            Some(Line::Encoding)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Line {
        Line::Text(s.into())
    }

    #[test]
    fn every_line_end_is_accepted_even_split_across_reads() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"STATUS\r"), vec![text("STATUS")]);
        // The \n of that \r\n arrives in the next read: no empty line.
        assert_eq!(
            s.push(b"\nACK seq=1\nACK seq=2\r\n\r\nAC"),
            vec![text("ACK seq=1"), text("ACK seq=2")]
        );
        assert_eq!(s.push(b"K seq=3\r"), vec![text("ACK seq=3")]);
        assert_eq!(s.push(b"\r"), vec![]);
    }

    #[test]
    fn a_line_of_512_bytes_passes_and_513_is_overlong_and_discarded() {
        let mut s = LineSplitter::default();
        let ok = "A".repeat(MAX_LINE);
        assert_eq!(s.push(format!("{ok}\n").as_bytes()), vec![text(&ok)]);
        let long = "B".repeat(100_000);
        assert_eq!(
            s.push(format!("{long}\nSTATUS\n").as_bytes()),
            vec![Line::Overlong, text("STATUS")]
        );
    }

    #[test]
    fn garbage_bytes_are_an_encoding_error_and_the_stream_goes_on() {
        let mut s = LineSplitter::default();
        assert_eq!(
            s.push(b"\x00\xff\xfe garbage\nSTATUS\n"),
            vec![Line::Encoding, text("STATUS")]
        );
    }
}
