//! Diagnostics: template and data problems with a locator, a message and hints.

use std::fmt;
use std::path::PathBuf;

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// Where in a template source a problem is: file, 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SourceLocation {
    pub file: PathBuf,
    pub line: u32,
    pub column: u32,
}

/// A template problem found at compile time.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub location: Option<SourceLocation>,
    pub message: String,
    pub hints: Vec<String>,
}

impl Diagnostic {
    /// Creates an error at a location.
    pub fn error(location: Option<SourceLocation>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            location,
            message: message.into(),
            hints: Vec::new(),
        }
    }

    /// Creates a warning at a location.
    pub fn warning(location: Option<SourceLocation>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            location,
            message: message.into(),
            hints: Vec::new(),
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match &self.location {
            Some(l) => write!(
                f,
                "{}:{}:{}: {sev}: {}",
                l.file.display(),
                l.line,
                l.column,
                self.message
            )?,
            None => write!(f, "{sev}: {}", self.message)?,
        }
        for h in &self.hints {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// A list of diagnostics that together made compilation fail.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", render_all(.0))]
pub struct Diagnostics(pub Vec<Diagnostic>);

fn render_all(d: &[Diagnostic]) -> String {
    d.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}
