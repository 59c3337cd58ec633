//! Source files of a template, byte offsets to line:column, and the diagnostics collector.

use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, SourceLocation};

/// A loaded source file with its line starts.
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// Wraps the text of a file.
    pub fn new(path: PathBuf, text: String) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            path,
            text,
            line_starts,
        }
    }

    /// Returns the 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let col = self.text[start..]
            .char_indices()
            .take_while(|(i, _)| start + i < offset)
            .count();
        (line as u32 + 1, col as u32 + 1)
    }

    /// Returns the location of a byte offset.
    pub fn loc(&self, offset: usize) -> SourceLocation {
        let (line, column) = self.line_col(offset);
        SourceLocation {
            file: self.path.clone(),
            line,
            column,
        }
    }
}

/// Collects diagnostics while compiling.
#[derive(Default)]
pub struct Diags {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl Diags {
    /// Records an error at a byte offset of a file.
    pub fn error(&mut self, file: &SourceFile, offset: usize, msg: impl Into<String>) {
        self.errors
            .push(Diagnostic::error(Some(file.loc(offset)), msg));
    }

    /// Records an error with a hint.
    pub fn error_hint(
        &mut self,
        file: &SourceFile,
        offset: usize,
        msg: impl Into<String>,
        hint: Option<String>,
    ) {
        let mut d = Diagnostic::error(Some(file.loc(offset)), msg);
        if let Some(h) = hint {
            d = d.with_hint(h);
        }
        self.errors.push(d);
    }

    /// Records an error without a position inside a file.
    pub fn error_in(&mut self, path: &Path, msg: impl Into<String>) {
        self.errors.push(Diagnostic::error(
            Some(SourceLocation {
                file: path.to_path_buf(),
                line: 1,
                column: 1,
            }),
            msg,
        ));
    }

    /// Records a warning at a byte offset.
    pub fn warning(&mut self, file: &SourceFile, offset: usize, msg: impl Into<String>) {
        self.warnings
            .push(Diagnostic::warning(Some(file.loc(offset)), msg));
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Returns a "did you mean" hint for the closest candidate, if one is close enough.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let best = candidates
        .into_iter()
        .map(|c| (edit_distance(name, c), c))
        .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)))?;
    let limit = (name.chars().count() / 3).max(2);
    (best.0 <= limit).then(|| format!("did you mean '{}'?", best.1))
}

/// Maps an offset in an XML-decoded value back to an offset in its raw source text
/// (entity references count as one decoded character per expansion character).
pub fn raw_offset(raw: &str, decoded_offset: usize) -> usize {
    let mut decoded = 0;
    let mut i = 0;
    let bytes = raw.as_bytes();
    while i < raw.len() && decoded < decoded_offset {
        if bytes[i] == b'&'
            && let Some(end) = raw[i..].find(';')
        {
            {
                let ent = &raw[i + 1..i + end];
                let expansion = match ent {
                    "lt" | "gt" | "amp" => 1,
                    "quot" | "apos" => 1,
                    _ => ent
                        .strip_prefix('#')
                        .and_then(|n| {
                            if let Some(h) = n.strip_prefix('x') {
                                u32::from_str_radix(h, 16).ok()
                            } else {
                                n.parse().ok()
                            }
                        })
                        .and_then(char::from_u32)
                        .map_or(1, char::len_utf8),
                };
                decoded += expansion;
                i += end + 1;
                continue;
            }
        }
        let ch = raw[i..].chars().next().map_or(1, char::len_utf8);
        decoded += ch;
        i += ch;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_chars() {
        let f = SourceFile::new("x".into(), "ab\nc€d\n".into());
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(3), (2, 1));
        assert_eq!(f.line_col(7), (2, 3));
    }

    #[test]
    fn hints_and_offsets() {
        assert_eq!(
            did_you_mean("headng", ["heading", "body", "small"]),
            Some("did you mean 'heading'?".into())
        );
        assert_eq!(did_you_mean("zzzzzz", ["heading"]), None);
        assert_eq!(raw_offset("a &lt; b", 3), 6);
    }
}
