//! Where a value came from, and errors that say so.
//!
//! Every user-facing input error names its place: `file:line:column` and the field path for
//! files, `table restaurants, row id=…` for a database row.

use std::fmt;
use std::path::PathBuf;

/// Where an input came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A position in a file (1-based line and column; 0 when unknown).
    File {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    /// A row of a database table.
    Row { table: String, key: String },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line, column } => {
                write!(f, "{}:{}:{}", path.display(), line, column)
            }
            Origin::Row { table, key } => write!(f, "table {table}, row id={key}"),
        }
    }
}

/// A value and the place it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    pub value: T,
    pub origin: Origin,
}

/// One problem found in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub origin: Origin,
    /// The field path inside the document, e.g. `http.bodyTemplate.partySize` (empty for the
    /// whole document).
    pub field: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: {}: {}", self.origin, self.field, self.message)
        }
    }
}

/// Every problem found, not just the first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
