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

impl Origin {
    /// A position in a file (1-based line and column).
    pub fn file(path: impl Into<PathBuf>, line: usize, column: usize) -> Self {
        Origin::File {
            path: path.into(),
            line,
            column,
        }
    }

    /// The file as a whole: its first line.
    pub(crate) fn file_start(path: impl Into<PathBuf>) -> Self {
        Origin::file(path, 1, 1)
    }
}

impl Diagnostic {
    pub fn new(origin: Origin, field: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            origin,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    /// `Ok(value)` when nothing was found, else every diagnostic.
    pub(crate) fn into_result<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

/// A restaurant left out of a run because its own input (its file, its row, its rendered agent)
/// is invalid. Restaurants are tenant data: one bad one must not block the others, so it is
/// reported with its problems and its objects are left as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Its id as read, when one could be read (possibly the invalid part itself).
    pub id: Option<String>,
    /// Its file or row.
    pub origin: Origin,
    /// Its problems, each with its own place.
    pub diagnostics: Diagnostics,
}

impl Skipped {
    pub fn new(id: Option<String>, origin: Origin, diagnostics: impl Into<Diagnostics>) -> Self {
        Skipped {
            id,
            origin,
            diagnostics: diagnostics.into(),
        }
    }
}
