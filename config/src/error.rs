//! Configuration errors with a position in a file.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where in the mesh directory something was written (1-based line and column; 0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    /// The file, as found below the mesh directory.
    pub file: PathBuf,
    /// 1-based line, 0 when the position is not known.
    pub line: u64,
    /// 1-based column, 0 when the position is not known.
    pub column: u64,
}

impl Origin {
    /// The origin of a whole file (no line or column).
    pub fn file(file: impl Into<PathBuf>) -> Self {
        Self {
            file: file.into(),
            line: 0,
            column: 0,
        }
    }

    pub(crate) fn at(file: &Path, loc: serde_saphyr::Location) -> Self {
        Self {
            file: file.to_path_buf(),
            line: loc.line(),
            column: loc.column(),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
        }
    }
}

/// One problem found in a mesh directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the problem is.
    pub origin: Origin,
    /// What is wrong, as a sentence a user can act on.
    pub message: String,
}

impl ConfigError {
    /// A problem at `origin`.
    pub fn new(origin: Origin, message: impl Into<String>) -> Self {
        Self {
            origin,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

/// Every problem found while loading a mesh directory, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "the mesh has {n} error{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}
